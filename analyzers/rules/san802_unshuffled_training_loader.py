from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..dataflow import dataflow
from ..effect_sites import decorated_no_grad, with_no_grad
from ..lookups import enclosing_function, named_calls, names_by_value
from ..model import ProgramModel
from ..name_guesses import EVAL_TOKENS, name_role, name_tokens
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name, enclosing_loop, names_in, walk
from ..torch_api import DATALOADER_NAMES, DATASET, LOADER_WRAPPERS
from ..values import values

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
        Training loaders are recognised by names, dataset arguments and Lightning's `train_dataloader()`;
        loaders built through factories, or datasets that shuffle themselves (iterable datasets, pre-shuffled
        shards), are not understood; a dataset class whose `__getitem__` ignores its index (a fresh random
        sample every time) is left alone when it is defined in the same file or imported from a module of the
        project (a class from an installed package is not read). A loader whose
        name is only used in a one-off `next(iter(loader))` or in loops under `torch.no_grad()` (feature
        extraction) is taken as not training; a loader class held in a variable is followed only when the
        variable is bound to `DataLoader` (or a conditional expression naming it) in the same scope.
    """
    fix_safety = """
        Unsafe: `shuffle=True` changes the order of the data in every epoch, and with it every result of the
        run.
    """
    VALID = [
        Valid("""
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
        """),
        Valid("""
            from torch.utils.data import DataLoader
            val_loader = DataLoader(val_set, batch_size=64)
        """),
        Valid("""
            from torch.utils.data import DataLoader
            test_loader = DataLoader(train_set, batch_size=64, shuffle=False)
        """),
        Valid("""
            from torch.utils.data import DataLoader, DistributedSampler
            train_loader = DataLoader(train_ds, batch_size=32, sampler=DistributedSampler(train_ds))
        """),
        Valid("""
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_ds, batch_sampler=bucket_sampler)
        """),
        Valid("""
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_ds, shuffle=args.shuffle)
        """),
        Valid("""
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_ds, **loader_kwargs)
        """),
        # an iterable dataset shuffles itself
        Valid("""
            from torch.utils.data import DataLoader, IterableDataset
            class Stream(IterableDataset):
                pass
            train_ds = Stream()
            train_loader = DataLoader(train_ds, batch_size=8)
        """),
        Valid("""
            from torch.utils.data import DataLoader
            loader = DataLoader(dataset, batch_size=8)
        """),
        Valid("""
            from torch.utils.data import DataLoader
            eval_dl = DataLoader(tokenized['validation'], batch_size=8)
        """),
        Valid("""
            from torch.utils.data import DataLoader
            train_eval_loader = DataLoader(train_set, batch_size=256)
        """),
        # one batch drawn to look at: the loader never drives training
        Valid("""
            from torch.utils.data import DataLoader
            batch_loader = DataLoader(train_dataset, batch_size=8)
            x, y = next(iter(batch_loader))
        """),
        # feature extraction: the loader is only iterated under no_grad
        Valid("""
            import torch
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_set, batch_size=256)
            with torch.no_grad():
                for x, _ in train_loader:
                    features.append(backbone(x))
        """),
        Valid("""
            import pytorch_lightning as pl
            from torch.utils.data import DataLoader
            class Model(pl.LightningModule):
                def train_dataloader(self):
                    return DataLoader(self.train_set, batch_size=32, shuffle=True)
                def val_dataloader(self):
                    return DataLoader(self.val_set, batch_size=32)
        """),
        # every item is a fresh random sample: the index, and so the order, means nothing
        Valid("""
            import torch
            from torch.utils.data import DataLoader, Dataset
            class ParityTask(Dataset):
                def __init__(self, n, n_elems):
                    self.n, self.n_elems = n, n_elems
                def __len__(self):
                    return self.n
                def __getitem__(self, idx):
                    x = torch.randint(0, 2, (self.n_elems,)).float()
                    return x, x.sum() % 2
            train_loader = DataLoader(ParityTask(1024, 64), batch_size=32)
        """),
    ]
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_set, batch_size=64)
            """,
            line=2,
            fixed="""
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
            """,
        ),
        Invalid(
            """
            import torch
            loader = torch.utils.data.DataLoader(train_dataset, batch_size=128, shuffle=False, num_workers=4)
            """,
            line=2,
            fixed="""
            import torch
            loader = torch.utils.data.DataLoader(train_dataset, batch_size=128, shuffle=True, num_workers=4)
            """,
        ),
        Invalid(
            """
            import torchvision
            from torch.utils.data import DataLoader
            dl = DataLoader(torchvision.datasets.MNIST('data', train=True, download=True), 32)
            """,
            line=3,
            fixed="""
            import torchvision
            from torch.utils.data import DataLoader
            dl = DataLoader(torchvision.datasets.MNIST('data', train=True, download=True), 32, shuffle=True)
            """,
        ),
        Invalid(
            """
            from torch.utils.data import DataLoader
            loader = DataLoader(
                tokenized['train'],
                batch_size=8,
                collate_fn=collator,
            )
            """,
            line=2,
            fixed="""
            from torch.utils.data import DataLoader
            loader = DataLoader(
                tokenized['train'],
                batch_size=8,
                collate_fn=collator, shuffle=True,
            )
            """,
        ),
        # the class held in a variable is still a DataLoader
        Invalid(
            """
            from torch.utils.data import DataLoader
            loader_cls = DataLoader if not infinite else InfiniteDataLoader
            train_loader = loader_cls(train_set, batch_size=64)
            """,
            line=3,
            fixed="""
            from torch.utils.data import DataLoader
            loader_cls = DataLoader if not infinite else InfiniteDataLoader
            train_loader = loader_cls(train_set, batch_size=64, shuffle=True)
            """,
        ),
        # Lightning's train_dataloader() returns the training loader
        Invalid(
            """
            import pytorch_lightning as pl
            from torch.utils.data import DataLoader
            class Model(pl.LightningModule):
                def train_dataloader(self):
                    return DataLoader(self.dataset, batch_size=32)
            """,
            line=5,
            fixed="""
            import pytorch_lightning as pl
            from torch.utils.data import DataLoader
            class Model(pl.LightningModule):
                def train_dataloader(self):
                    return DataLoader(self.dataset, batch_size=32, shuffle=True)
            """,
        ),
        # iterated with gradients on: training, even though one batch is also inspected
        Invalid(
            """
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_set, batch_size=64)
            print(next(iter(train_loader))[0].shape)
            for x, y in train_loader:
                loss = model(x).sum()
            """,
            line=2,
            fixed="""
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
            print(next(iter(train_loader))[0].shape)
            for x, y in train_loader:
                loss = model(x).sum()
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        for call, qual in named_calls(program):
            if not call.args:
                continue
            if qual not in DATALOADER_NAMES:
                if not isinstance(call.func, cst.Name) or call.func.value in program.imports:
                    continue
                flow = flow or ctx.dataflow
                if not _loader_class_alias(program, flow, call.func):
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
            if dataset is None or not _is_training(program, call, dataset.value):
                continue
            if _iterable(program, dataset.value) or _never_trains(program, call) \
                    or _ignores_index(program, dataset.value):
                continue
            if shuffle is not None:
                fix = NodeFix("Use shuffle=True", (Replace(shuffle.value, "True"),), UNSAFE)
            else:
                last = call.args[-1]
                fix = NodeFix("Add shuffle=True",
                              (Replace(last.value, f"{program.code_for(last.value)}, shuffle=True"),), UNSAFE)
            yield self.finding(call.func, fix=fix)


def _role(name: str | None) -> str | None:
    return name_role(name)


def _loader_class_alias(program: ProgramModel, flow, func: cst.Name) -> bool:
    """``loader_cls = DataLoader if cond else InfiniteDataLoader`` (or ``= DataLoader``) reaches the call."""
    binding = flow.reaching(func.value, func)
    value = getattr(binding, "value", None)
    options = [value.body, value.orelse] if isinstance(value, cst.IfExp) else [value]
    return any(option is not None and program.qualname(option) in DATALOADER_NAMES for option in options)


def _ignores_index(program: ProgramModel, dataset: cst.BaseExpression) -> bool:
    """``Cls(...)`` of a dataset class defined in this file (or imported from a module of the project) whose
    ``__getitem__`` never reads its index (it draws a fresh random sample every time): the order of the indices
    carries nothing to shuffle."""
    if not isinstance(dataset, cst.Call) or not isinstance(dataset.func, cst.Name):
        return False
    cls = program.classes.get(dataset.func.value)
    if cls is None and dataset.func.value in program.imports and program.project is not None:
        try:
            resolved = program.project.resolve(program, dataset.func.value)
        except Exception:  # a broken sibling never breaks this file
            resolved = None
        cls = resolved[0].classes.get(resolved[1]) if resolved is not None else None
    if cls is None or not isinstance(cls.body, cst.IndentedBlock):
        return False
    getitem = next((s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__getitem__"), None)
    if getitem is None or len(getitem.params.params) != 2:
        return False
    return getitem.params.params[1].name.value not in names_in(getitem.body)


def _never_trains(program: ProgramModel, call: cst.Call) -> bool:
    """The loader ``name = DataLoader(...)`` is only looked at: every use of the name is a one-off
    ``next(iter(name))`` outside any loop, or a ``for`` loop run under ``torch.no_grad()`` (feature
    extraction). Any other use (passed to a function, ``len``, a loop with gradients) keeps it a candidate."""
    parent = program.parent(call)
    if not (isinstance(parent, cst.Assign) and len(parent.targets) == 1
            and isinstance(parent.targets[0].target, cst.Name)):
        return False
    name = parent.targets[0].target.value
    function = enclosing_function(program, call)
    bindings = [b for b in program.bindings.get(name, ())
                if function is None or enclosing_function(program, b.node) is function]
    if len(bindings) != 1:
        return False
    uses = [n for n in names_by_value(program).get(name, ()) if n is not parent.targets[0].target
            and (function is None or enclosing_function(program, n) is function)]
    return bool(uses) and all(_inspection(program, use) or _no_grad_loop(program, use) for use in uses)


def _inspection(program: ProgramModel, use: cst.Name) -> bool:
    arg = program.parent(use)
    inner = program.parent(arg) if isinstance(arg, cst.Arg) else None
    outer_arg = program.parent(inner) if isinstance(inner, cst.Call) else None
    outer = program.parent(outer_arg) if isinstance(outer_arg, cst.Arg) else None
    return isinstance(outer, cst.Call) and program.call_name(inner) == "iter" \
        and program.call_name(outer) == "next" and enclosing_loop(program, outer) is None


def _no_grad_loop(program: ProgramModel, use: cst.Name) -> bool:
    node: cst.CSTNode | None = use
    while node is not None and not isinstance(node, cst.For):
        node = program.parent(node)
        if isinstance(node, cst.Call) and program.call_name(node) not in LOADER_WRAPPERS:
            return False
    if node is None or not any(n is use for n in walk(node.iter)):
        return False
    while node is not None:
        if isinstance(node, cst.With) and with_no_grad(program, node, None):
            return True
        if isinstance(node, cst.FunctionDef):
            return decorated_no_grad(program, node)
        node = program.parent(node)
    return False


def _is_training(program: ProgramModel, call: cst.Call, dataset: cst.BaseExpression) -> bool:
    parent = program.parent(call)
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
    data = values(program).of(dataset)
    if data is not None and data.kind == DATASET and data.split is not None:
        roles.add(data.split)  # `train_set = CIFAR10(..., train=True)` reaching the loader, under any name
    function = enclosing_function(program, call)
    if function is not None and function.name.value == "train_dataloader":
        roles.add("train")  # Lightning's hook returns the training loader
    roles.discard(None)
    return roles == {"train"}


def _iterable(program: ProgramModel, dataset: cst.BaseExpression) -> bool:
    """The dataset may be an IterableDataset (streaming): shuffle=True would raise."""
    data = values(program).of(dataset)
    if data is not None and data.kind == DATASET and data.iterable:
        return True
    candidates = [dataset]
    name = dotted_name(dataset)
    if name is not None:
        flow = dataflow(program)
        defs = flow.definitions(dataset)
        if defs is None:
            # unknown origin: look at every binding of the name
            candidates.extend(b.value for b in program.bindings.get(name, ()) if b.value is not None)
        else:
            candidates.extend(v for _, v in defs)
    for value in candidates:
        text = program.code_for(value)
        if any(hint in text for hint in _ITERABLE_HINTS):
            return True
        if isinstance(value, cst.Call):
            callee = dotted_name(value.func)
            if callee is not None and callee in program.classes:
                bases = " ".join(program.code_for(b.value) for b in program.classes[callee].bases)
                if "Iterable" in bases or "IterDataPipe" in bases:
                    return True
            if isinstance(value.func, cst.Attribute) and value.func.attr.value in ("shuffle", "shard", "batched"):
                return True  # `ds.shuffle(buffer_size)` style datasets
    return False
