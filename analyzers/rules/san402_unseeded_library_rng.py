from __future__ import annotations

from typing import Iterator

import libcst as cst

from ..call_mapping import outside_bases
from ..context import RuleContext
from ..dataflow import dataflow
from ..flow import SEED, flow_of
from ..lookups import call_sites, module_alias, named_calls, referenced_otherwise
from ..model import Binding, ProgramModel
from ..rule import UNSAFE, InsertAfter, Invalid, NodeFix, Rule, Valid
from ..rules.san401_unseeded_training import seed_kinds
from ..syntax import dotted_name, statement_of_call
from ..torch_api import seeds_when_built

_RANDOM_FUNCTIONS = frozenset(
    {"random", "randint", "randrange", "shuffle", "choice", "choices", "sample", "uniform", "gauss",
     "normalvariate", "lognormvariate", "expovariate", "betavariate", "gammavariate", "triangular",
     "vonmisesvariate", "paretovariate", "weibullvariate", "getrandbits", "randbytes"}
)
_NUMPY_NOT_GLOBAL = frozenset(
    {"seed", "default_rng", "RandomState", "Generator", "SeedSequence", "get_state", "set_state", "PCG64",
     "MT19937", "Philox", "SFC64", "BitGenerator", "bit_generator"}
)


class UnseededLibraryRng(Rule):
    """`random` or `numpy.random` global functions used (data order, augmentation, noise) in a module that
    seeds torch but not that library — `seed_everything` / `set_seed` and unknown seeding helpers count
    as seeding everything —, or before the Hugging Face `Trainer` that seeds every library is built."""

    code = "SAN402"
    name = "unseeded-library-rng"
    message = "torch is seeded but this library's global random generator is not: it differs on every run"
    _lib_message = "torch is seeded but {lib} is not: this use of {lib} differs on every run"
    _numpy_split_message = ("torch is seeded but numpy is not: this {call}() shuffles with numpy's global state "
                            "and differs on every run (seed numpy, or pass {keyword}=)")
    _late_message = ("{lib} is seeded only when the Trainer is built, after this {what}: it draws from {lib}'s "
                     "unseeded global state and differs on every run ({advice})")
    _split_message = ("torch is seeded but {lib} is not: this torchtext split() shuffles with {lib}'s global state "
                      "and differs on every run (seed {lib}, or pass random_state=)")
    why = """
        `torch.manual_seed` seeds only torch's generators. Python's `random` and NumPy's global generator
        keep their own state, so shuffles, crops and noise drawn from them change on every run and the
        "reproducible" script is not.
    """
    example = """
        torch.manual_seed(0)
        random.shuffle(files)
    """
    fix_doc = """
        Seed the library next to torch: `random.seed(seed)` / `np.random.seed(seed)` (or use a seeded
        `np.random.default_rng(seed)` / `random.Random(seed)` instance, or `seed_everything`). The quick fix
        inserts the seeding call right after `torch.manual_seed(...)`.
    """
    known_problems = """
        Only the global functions of `random` and `numpy.random` are tracked, and the library calls that split
        with them internally: `split()` of a legacy torchtext dataset (built by `splits(...)`) without
        `random_state=` (random), scikit-learn's `train_test_split` / `shuffle` without `random_state=` and a
        Hugging Face dataset's `train_test_split` / `shuffle()` without `seed=` (numpy; a dataset the module
        loads with `datasets.load_dataset`, followed through names, splits and its methods). Generators created
        elsewhere and other library calls that draw from these generators internally (timm's augmentations, for
        one) are not seen. A Hugging Face `Trainer` (and its subclasses: `Seq2SeqTrainer`, trl's trainers) seeds
        every library from `TrainingArguments.seed` when it is built: a draw before that, in the same function, is
        reported; one in a helper called before it is not seen. A draw inside a module-level function that nothing
        in the module calls or refers to is left alone (it does not run when the module runs).
    """
    fix_safety = """
        Unsafe: seeding the library changes the random numbers the script draws from then on.
    """
    VALID = [
        # the split is seeded where it is drawn, or not shuffled at all (a time series)
        Valid("""
            import torch
            from sklearn.model_selection import train_test_split

            torch.manual_seed(0)
            train_idx, val_idx = train_test_split(indices, test_size=0.1, random_state=0)
            past, future = train_test_split(series, test_size=0.2, shuffle=False)
        """),
        # a helper nothing calls any more (its call was commented out): its draws never happen
        Valid("""
            import numpy as np
            import torch
            torch.manual_seed(0)

            def sample_noise(n):
                return np.random.randn(n)

            # print(sample_noise(4))
            x = torch.randn(4)
        """),
        # a seeded split: random_state given
        Valid("""
            import random
            import torch
            from torchtext import data, datasets
            torch.manual_seed(0)
            train, test = datasets.IMDB.splits(TEXT, LABEL)
            train, valid = train.split(random_state=random.getstate())
        """),
        # str.split: not a dataset
        Valid("""
            import torch
            torch.manual_seed(0)
            line = open("data.txt").read()
            words = line.split()
        """),
        # dataset code runs in DataLoader workers, which PyTorch seeds from torch's seed
        Valid("""
            import random
            import torch
            from torch.utils.data import Dataset
            torch.manual_seed(0)

            class D(Dataset):
                def __getitem__(self, i):
                    return random.random()
        """),
        Valid("""
            import random
            import torch
            torch.manual_seed(0)
            random.seed(0)
            random.shuffle(files)
        """),
        Valid("""
            import numpy as np
            import torch
            torch.manual_seed(0)
            rng = np.random.default_rng(0)
            x = rng.normal(size=3)
        """),
        Valid("""
            import random
            from lightning import seed_everything
            import torch
            seed_everything(0)
            torch.manual_seed(0)
            random.shuffle(files)
        """),
        Valid("""
            import random
            import torch
            from utils import seed_all
            torch.manual_seed(0)
            seed_all(0)
            random.shuffle(files)
        """),
        # a Hugging Face Trainer seeds every library when it is built: a draw after that is seeded, and a split
        # before it passes its own seed
        Valid("""
            import numpy as np
            from datasets import load_dataset
            from transformers import Trainer, TrainingArguments

            def main():
                data = load_dataset("json", data_files="train.json")["train"]
                parts = data.train_test_split(test_size=0.1, seed=42)
                trainer = Trainer(model=model, args=TrainingArguments("out"), train_dataset=parts["train"])
                noise = np.random.normal(size=3)
                trainer.train()
        """),
        # torch not seeded either: SAN401's business
        Valid("""
            import random
            random.shuffle(files)
        """),
    ]
    INVALID = [
        # scikit-learn's split draws from NumPy's global generator when random_state is not given
        Invalid(
            """
            import numpy as np
            import torch
            from sklearn.model_selection import train_test_split

            torch.manual_seed(0)
            train_idx, val_idx = train_test_split(np.arange(len(ds)), test_size=0.1)
            """,
            line=6,
            column=21,
            message="torch is seeded but numpy is not: this train_test_split() shuffles with numpy's global state "
                    "and differs on every run (seed numpy, or pass random_state=)",
        ),
        # a Hugging Face dataset's split without seed= does too
        Invalid(
            """
            import datasets
            import torch

            torch.manual_seed(0)
            train = datasets.load_dataset("imdb", split="train")
            parts = train.map(tokenize).train_test_split(test_size=0.25)
            """,
            line=6,
            column=8,
        ),
        # and so does its shuffle() without seed=
        Invalid(
            """
            from datasets import load_dataset
            import torch

            torch.manual_seed(0)
            train, test = load_dataset("imdb", split=["train", "test"])
            train = train.shuffle().select(range(1000))
            """,
            line=6,
            column=8,
        ),
        # the Trainer seeds the run from TrainingArguments.seed only when it is built: the shuffle before it is not
        Invalid(
            """
            import transformers
            from datasets import load_dataset

            def train(data_path, output_dir):
                data = load_dataset("json", data_files=data_path)
                train_data = data["train"].shuffle().map(tokenize)
                trainer = transformers.Trainer(
                    model=model, train_dataset=train_data, args=transformers.TrainingArguments(output_dir))
                trainer.train()
            """,
            line=6,
            column=17,
            message="numpy is seeded only when the Trainer is built, after this shuffle(): it draws from numpy's "
                    "unseeded global state and differs on every run (pass seed=, or seed numpy before it)",
        ),
        # legacy torchtext: Dataset.split() without random_state shuffles with random's global state
        Invalid(
            """
            import random
            import torch
            from torchtext import data, datasets

            torch.manual_seed(1234)
            train, test = datasets.IMDB.splits(TEXT, LABEL)
            train, valid = train.split()
            """,
            line=7,
            column=15,
            message="torch is seeded but random is not: this torchtext split() shuffles with random's global state "
                    "and differs on every run (seed random, or pass random_state=)",
            fixed="""
            import random
            import torch
            from torchtext import data, datasets

            torch.manual_seed(1234)
            random.seed(1234)
            train, test = datasets.IMDB.splits(TEXT, LABEL)
            train, valid = train.split()
            """,
        ),
        Invalid(
            """
            import random
            import torch

            torch.manual_seed(args.seed)
            random.shuffle(files)
            """,
            line=5,
            fixed="""
            import random
            import torch

            torch.manual_seed(args.seed)
            random.seed(args.seed)
            random.shuffle(files)
            """,
        ),
        Invalid(
            """
            import numpy as np
            import torch

            def set_seed(seed):
                torch.manual_seed(seed)
                torch.cuda.manual_seed_all(seed)

            set_seed(1)
            idx = np.random.permutation(100)
            """,
            line=9,
            fixed="""
            import numpy as np
            import torch

            def set_seed(seed):
                torch.manual_seed(seed)
                np.random.seed(seed)
                torch.cuda.manual_seed_all(seed)

            set_seed(1)
            idx = np.random.permutation(100)
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        seeds = seed_kinds(program)
        if "all" in seeds:
            return
        trainers = _seeding_trainers(program)
        if "torch" not in seeds and not trainers:
            return
        for lib in ("random", "numpy"):
            if lib in seeds:
                continue
            if trainers:  # the Trainer seeds every library when it is built: only draws before that are unseeded
                use = next((use for use in _uses(program, lib) if _before_any(program, use, trainers)), None)
                if use is not None:
                    what = f"{dotted_name(use.func) or use.func.attr.value}()"
                    yield self.finding(use, message=self._late_message.format(
                        lib=lib, what=what, advice=_advice(program, use, lib)))
                continue
            use = next(_uses(program, lib), None)
            if use is None:
                continue
            keyword = _numpy_split(program, use) if lib == "numpy" else None
            if lib == "random" and _torchtext_split(program, use):
                message = self._split_message.format(lib=lib)
            elif keyword is not None:
                message = self._numpy_split_message.format(call=dotted_name(use.func) or "split", keyword=keyword)
            else:
                message = self._lib_message.format(lib=lib)
            yield self.finding(use, message=message, fix=_fix(program, lib))


def _uses(program: ProgramModel, lib: str) -> Iterator[cst.Call]:
    """The calls that draw from ``lib``'s global generator when the module runs, in order."""
    for call, qual in named_calls(program):
        module, _, fn = (qual or "").rpartition(".")
        if lib == "random" and module == "random" and fn in _RANDOM_FUNCTIONS or \
                lib == "numpy" and module == "numpy.random" and fn not in _NUMPY_NOT_GLOBAL or \
                lib == "random" and _torchtext_split(program, call) or lib == "numpy" and _numpy_split(program, call):
            if not _in_worker_code(program, call) and not _never_called(program, call):
                yield call


def _seeding_trainers(program: ProgramModel) -> list[cst.Call]:
    """The constructions of a Hugging Face ``Trainer`` (or of a class of this module derived from one): each seeds
    every generator from ``TrainingArguments.seed`` as it is built."""
    return [call for call, qual in named_calls(program)
            if qual is not None and (seeds_when_built(qual) or qual in program.classes
                                     and any(seeds_when_built(base) for base in outside_bases(program, qual)))]


def _before_any(program: ProgramModel, use: cst.Call, trainers: list[cst.Call]) -> bool:
    """``use`` runs before one of ``trainers`` is built: both in the same function (or both at module level), in
    different statements of its body, the draw's first."""
    function = program.enclosing_function(use)
    drawn = _body_position(program, use, function)
    return drawn is not None and any(
        program.enclosing_function(trainer) is function
        and (built := _body_position(program, trainer, function)) is not None and drawn < built
        for trainer in trainers)


def _body_position(program: ProgramModel, node: cst.CSTNode, function: cst.FunctionDef | None) -> int | None:
    """The index, in the body of ``function`` (the module's when None), of the statement that holds ``node``."""
    body = program.module if function is None else function.body
    child = node
    for ancestor in program.ancestors(node):
        if ancestor is body:
            return next((i for i, statement in enumerate(body.body) if statement is child), None)
        child = ancestor
    return None


def _advice(program: ProgramModel, use: cst.Call, lib: str) -> str:
    keyword = _numpy_split(program, use) if lib == "numpy" else "random_state" if _torchtext_split(program, use) \
        else None
    return f"pass {keyword}=, or seed {lib} before it" if keyword else f"seed {lib} before it"


def _never_called(program: ProgramModel, node: cst.CSTNode) -> bool:
    """``node`` is in a module-level function that nothing in the module calls or refers to (a helper whose only
    call was commented out): its draws do not happen when this module runs, whatever it seeds."""
    function = program.enclosing_function(node)
    while function is not None and program.enclosing_function(function) is not None:
        function = program.enclosing_function(function)
    info = program.function_info(function) if function is not None else None
    if info is None or info.class_name is not None or info.decorators or program.parent(function) is not program.module:
        return False
    calls = call_sites(program, info)
    return not calls and not referenced_otherwise(program, info, calls)


def _torchtext_split(program: ProgramModel, call: cst.Call) -> bool:
    """``train, valid = train_data.split()`` on a dataset that torchtext's legacy ``splits(...)`` built: without
    ``random_state=`` it takes Python's global ``random`` state to shuffle the examples it splits."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "split" and isinstance(func.value, cst.Name)):
        return False
    if any(arg.keyword is not None and arg.keyword.value == "random_state" for arg in call.args) \
            or any(arg.star for arg in call.args) or len([a for a in call.args if a.keyword is None]) > 3:
        return False  # random_state given (the fourth positional parameter too)
    binding = dataflow(program).reaching(func.value.value, call)
    if not isinstance(binding, Binding) or not isinstance(binding.node, cst.Assign):
        return False
    source = binding.node.value
    qual = program.call_name(source) if isinstance(source, cst.Call) else None
    return qual is not None and qual.startswith("torchtext.") and qual.rsplit(".", 1)[-1] == "splits"


# library functions that split or shuffle with NumPy's global generator unless given a seed (the keyword)
_NUMPY_SPLITS = {"sklearn.model_selection.train_test_split": "random_state", "sklearn.utils.shuffle": "random_state"}
_HF_SPLITS = frozenset({"train_test_split", "shuffle"})  # a Hugging Face dataset's methods that shuffle


def _numpy_split(program: ProgramModel, call: cst.Call) -> str | None:
    """The keyword that would seed ``call`` when it splits or shuffles with NumPy's global state: scikit-learn's
    ``train_test_split(...)`` / ``shuffle(...)`` without ``random_state=``, a Hugging Face dataset's
    ``.train_test_split(...)`` / ``.shuffle()`` without ``seed=`` or ``generator=``."""
    func = call.func
    qual = program.call_name(call) or ""
    if qual not in _NUMPY_SPLITS and not (type(func) is cst.Attribute and func.attr.value in _HF_SPLITS):
        return None
    keywords = {arg.keyword.value for arg in call.args if arg.keyword is not None}
    if any(arg.star == "**" for arg in call.args):
        return None
    if qual in _NUMPY_SPLITS:
        return None if _NUMPY_SPLITS[qual] in keywords or _no_shuffle(call) else _NUMPY_SPLITS[qual]
    if keywords & {"seed", "generator"}:
        return None
    positional = len([arg for arg in call.args if arg.keyword is None])
    method = func.attr.value
    if method == "train_test_split" and positional < 5 and not _no_shuffle(call) or method == "shuffle" \
            and positional == 0:
        return "seed" if _hf_dataset(program, func.value, 0) else None
    return None


# methods of a Hugging Face dataset that return a dataset (or a dict of them)
_HF_DATASET_METHODS = frozenset({"map", "filter", "select", "remove_columns", "rename_column", "rename_columns",
                                 "with_format", "cast", "cast_column", "flatten", "sort", "shuffle",
                                 "train_test_split"})


def _hf_dataset(program: ProgramModel, expr: cst.BaseExpression, depth: int) -> bool:
    """``expr`` holds a Hugging Face dataset: ``datasets.load_dataset(...)`` (or ``load_from_disk``), a split of
    it (``[...]``, tuple unpacking), or what its dataset methods (``.map(...)``) return, through names."""
    if depth > 8:
        return False
    if type(expr) is cst.Subscript:
        return _hf_dataset(program, expr.value, depth + 1)
    if type(expr) is cst.Call:
        qual = program.call_name(expr) or ""
        if qual.startswith("datasets.") and qual.rsplit(".", 1)[-1] in ("load_dataset", "load_from_disk"):
            return True
        func = expr.func
        return type(func) is cst.Attribute and func.attr.value in _HF_DATASET_METHODS \
            and _hf_dataset(program, func.value, depth + 1)
    if type(expr) is cst.Name:
        flow = dataflow(program)
        binding = flow.reaching(expr.value, expr)
        if binding is None:  # bound in every branch of an `if` (`load_dataset("json", ...)` / `load_dataset(name)`)
            joined = flow.branch_bindings(expr.value, expr)
            return joined is not None and all(_hf_binding(program, b, depth + 1) for b in joined)
        return isinstance(binding, Binding) and _hf_binding(program, binding, depth + 1)
    return False


def _hf_binding(program: ProgramModel, binding: Binding, depth: int) -> bool:
    if binding.value is None and type(binding.node) is cst.Assign:  # one of the splits unpacked
        return _hf_dataset(program, binding.node.value, depth)
    return binding.value is not None and _hf_dataset(program, binding.value, depth)


def _no_shuffle(call: cst.Call) -> bool:
    return any(arg.keyword is not None and arg.keyword.value == "shuffle" and isinstance(arg.value, cst.Name)
               and arg.value.value == "False" for arg in call.args)


_WORKER_METHODS = frozenset({"__getitem__", "__getitems__", "__iter__", "__next__", "__call__"})


def _in_worker_code(program: ProgramModel, node) -> bool:
    """Dataset / transform code: in DataLoader workers PyTorch seeds `random` and NumPy from torch's
    seed, so whether it is reproducible depends on `num_workers` — too uncertain to report."""
    for ancestor in program.ancestors(node):
        if isinstance(ancestor, cst.FunctionDef) and (
            ancestor.name.value in _WORKER_METHODS or "worker_init" in ancestor.name.value
        ):
            return True
        if isinstance(ancestor, cst.ClassDef) and any(
            (dotted_name(b.value) or "").endswith(("Dataset", "Sampler")) for b in ancestor.bases
        ):
            return True
    return False


def _fix(program: ProgramModel, lib: str) -> NodeFix | None:
    flow = flow_of(program)
    anchor = None
    for scope in flow.all_scopes():
        for e in scope.effects:
            if e.kind == SEED and e.detail == "torch" and e.direct:
                qual = program.call_name(e.site) or ""
                if qual == "torch.manual_seed":
                    anchor = e.site
                    break
        if anchor is not None:
            break
    if anchor is None or not anchor.args or anchor.args[0].keyword is not None:
        return None
    stmt = statement_of_call(program, anchor)
    if stmt is None:
        return None
    value = program.code_for(anchor.args[0].value)
    if lib == "random":
        alias = module_alias(program, "random")
        text = f"{alias}.seed({value})" if alias else None
    else:
        alias = module_alias(program, "numpy")
        text = f"{alias}.random.seed({value})" if alias else None
        if text is None:
            alias = module_alias(program, "numpy.random")
            text = f"{alias}.seed({value})" if alias else None
    if text is None:
        return None
    return NodeFix(f"Seed {lib} too", (InsertAfter(stmt, text),), UNSAFE)
