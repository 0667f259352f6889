from __future__ import annotations

import libcst as cst

from ..dataflow import EVAL_TOKENS, dataflow, name_role, name_tokens
from ..flow import named_calls
from ..model import ProgramModel, dotted_name
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE

_DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
# Streaming / iterable datasets cannot be shuffled by the DataLoader (shuffle=True raises).
_ITERABLE_HINTS = ("IterableDataset", "WebDataset", "IterDataPipe", "wds.", "webdataset", "streaming", "Stream")


class UnshuffledTrainingLoader(Rule):
    """A training `DataLoader` (its name, or its dataset's, says *train*, or the dataset is built with
    `train=True` / `split="train"`) with neither `shuffle=True` nor a `sampler` / `batch_sampler`."""

    code = "SAN802"
    name = "unshuffled-training-loader"
    message = "training DataLoader without shuffle=True or a sampler: every epoch sees the batches in the same order"
    why = """
        Without shuffling, each epoch presents the same batches in the same order, and datasets stored
        sorted by class or source give batches of one class at a time: the gradients are strongly
        correlated, BatchNorm statistics are biased and the model chases the order (loss curves with a
        periodic sawtooth are the tell). SGD's analysis assumes i.i.d. mini-batches.
    """
    example = """
        train_loader = DataLoader(train_set, batch_size=64)   # SAN802
    """
    fix_doc = """
        Pass `shuffle=True` (or a `sampler`, e.g. `DistributedSampler` under DDP, whose `set_epoch` must be
        called every epoch). Keep `shuffle=False` for validation and test loaders.
    """
    known_problems = """
        Training loaders are recognised by names and dataset arguments; loaders built through factories, or
        datasets that shuffle themselves (iterable datasets, pre-shuffled shards), are not understood.
    """
    fix_safety = """
        Unsafe: `shuffle=True` changes the order of the data in every epoch, and with it every result of the
        run.
    """
    VALID = [
        "from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_set, batch_size=64, shuffle=True)\n",
        "from torch.utils.data import DataLoader\nval_loader = DataLoader(val_set, batch_size=64)\n",
        "from torch.utils.data import DataLoader\ntest_loader = DataLoader(train_set, batch_size=64, shuffle=False)\n",
        "from torch.utils.data import DataLoader, DistributedSampler\n"
        "train_loader = DataLoader(train_ds, batch_size=32, sampler=DistributedSampler(train_ds))\n",
        "from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_ds, batch_sampler=bucket_sampler)\n",
        "from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_ds, shuffle=args.shuffle)\n",
        "from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_ds, **loader_kwargs)\n",
        # an iterable dataset shuffles itself
        "from torch.utils.data import DataLoader, IterableDataset\nclass Stream(IterableDataset):\n    pass\n"
        "train_ds = Stream()\ntrain_loader = DataLoader(train_ds, batch_size=8)\n",
        "from torch.utils.data import DataLoader\nloader = DataLoader(dataset, batch_size=8)\n",
        "from torch.utils.data import DataLoader\neval_dl = DataLoader(tokenized['validation'], batch_size=8)\n",
        "from torch.utils.data import DataLoader\ntrain_eval_loader = DataLoader(train_set, batch_size=256)\n",
    ]
    INVALID = [
        Invalid(
            "from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_set, batch_size=64)\n",
            line=2,
            fixed="from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_set, batch_size=64, shuffle=True)\n",
        ),
        Invalid(
            "import torch\nloader = torch.utils.data.DataLoader(train_dataset, batch_size=128, shuffle=False, num_workers=4)\n",
            line=2,
            fixed="import torch\nloader = torch.utils.data.DataLoader(train_dataset, batch_size=128, shuffle=True, num_workers=4)\n",
        ),
        Invalid(
            "import torchvision\nfrom torch.utils.data import DataLoader\n"
            "dl = DataLoader(torchvision.datasets.MNIST('data', train=True, download=True), 32)\n",
            line=3,
            fixed="import torchvision\nfrom torch.utils.data import DataLoader\n"
            "dl = DataLoader(torchvision.datasets.MNIST('data', train=True, download=True), 32, shuffle=True)\n",
        ),
        Invalid(
            "from torch.utils.data import DataLoader\nloader = DataLoader(\n    tokenized['train'],\n    batch_size=8,\n    collate_fn=collator,\n)\n",
            line=2,
            fixed="from torch.utils.data import DataLoader\nloader = DataLoader(\n    tokenized['train'],\n    batch_size=8,\n    collate_fn=collator, shuffle=True,\n)\n",
        ),
    ]

    def check(self, model: ProgramModel):
        for call, qual in named_calls(model):
            if qual not in _DATALOADERS or not call.args:
                continue
            if any(a.star for a in call.args):
                continue
            keywords = {a.keyword.value: a for a in call.args if a.keyword is not None}
            positional = [a for a in call.args if a.keyword is None]
            if "sampler" in keywords or "batch_sampler" in keywords or len(positional) > 3:
                continue
            shuffle = keywords.get("shuffle") or (positional[2] if len(positional) > 2 else None)
            if shuffle is not None and not (isinstance(shuffle.value, cst.Name) and shuffle.value.value == "False"):
                continue
            dataset = keywords.get("dataset") or (positional[0] if positional else None)
            if dataset is None or not _is_training(model, call, dataset.value):
                continue
            if _iterable(model, dataset.value):
                continue
            if shuffle is not None:
                fix = NodeFix("Use shuffle=True", (NodeEdit("replace", shuffle.value, "True"),), UNSAFE)
            else:
                last = call.args[-1]
                fix = NodeFix("Add shuffle=True",
                              (NodeEdit("replace", last.value, f"{model.code_for(last.value)}, shuffle=True"),), UNSAFE)
            yield self.finding(call.func, fix=fix)


def _role(name: str | None) -> str | None:
    return name_role(name)


def _is_training(model: ProgramModel, call: cst.Call, dataset: cst.BaseExpression) -> bool:
    parent = model.parent(call)
    loader_name = None
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
        loader_name = dotted_name(parent.targets[0].target)
    elif isinstance(parent, cst.AnnAssign):
        loader_name = dotted_name(parent.target)
    if loader_name and set(name_tokens(loader_name.rsplit(".", 1)[-1])) & EVAL_TOKENS:
        return False  # `train_eval_loader`: evaluating on the training set, order does not matter
    roles = {_role(loader_name), _role(dotted_name(dataset))}
    if isinstance(dataset, cst.Subscript) and len(dataset.slice) == 1 and isinstance(dataset.slice[0].slice, cst.Index) \
            and isinstance(dataset.slice[0].slice.value, cst.SimpleString):
        key = dataset.slice[0].slice.value.evaluated_value
        roles.add(_role(key) if isinstance(key, str) else None)
        roles.add(_role(dotted_name(dataset.value)))
    if isinstance(dataset, cst.Call):
        for arg in dataset.args:
            if arg.keyword is not None and arg.keyword.value == "train" and isinstance(arg.value, cst.Name):
                roles.add("train" if arg.value.value == "True" else "eval")
            if arg.keyword is not None and arg.keyword.value in ("split", "subset", "mode") and isinstance(arg.value, cst.SimpleString):
                roles.add(_role(arg.value.evaluated_value if isinstance(arg.value.evaluated_value, str) else None) or "other")
    roles.discard(None)
    return roles == {"train"}


def _iterable(model: ProgramModel, dataset: cst.BaseExpression) -> bool:
    """The dataset may be an IterableDataset (streaming): shuffle=True would raise."""
    values = [dataset]
    name = dotted_name(dataset)
    if name is not None:
        flow = dataflow(model)
        defs = flow.definitions(dataset)
        if defs is None:
            # unknown origin: look at every binding of the name
            values.extend(b.value for b in model.bindings.get(name, ()) if b.value is not None)
        else:
            values.extend(v for _, v in defs)
    for value in values:
        text = model.code_for(value)
        if any(hint in text for hint in _ITERABLE_HINTS):
            return True
        if isinstance(value, cst.Call):
            callee = dotted_name(value.func)
            if callee is not None and callee in model.classes:
                bases = " ".join(model.code_for(b.value) for b in model.classes[callee].bases)
                if "Iterable" in bases or "IterDataPipe" in bases:
                    return True
            if isinstance(value.func, cst.Attribute) and value.func.attr.value in ("shuffle", "shard", "batched"):
                return True  # `ds.shuffle(buffer_size)` style datasets
    return False
