from __future__ import annotations

import libcst as cst

from ..flow import SEED, flow_of, module_alias, named_calls, statement_of_call
from ..model import ProgramModel, dotted_name
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE
from ..rules.san401_unseeded_training import seed_kinds

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
    as seeding everything."""

    code = "SAN402"
    name = "unseeded-library-rng"
    message = "torch is seeded but this library's global random generator is not: it differs on every run"
    _lib_message = "torch is seeded but {lib} is not: this use of {lib} differs on every run"
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
        Only the global functions of `random` and `numpy.random` are tracked; generators created elsewhere and
        library calls that draw from these generators internally are not seen.
    """
    fix_safety = """
        Unsafe: seeding the library changes the random numbers the script draws from then on.
    """
    VALID = [
        # dataset code runs in DataLoader workers, which PyTorch seeds from torch's seed
        "import random\nimport torch\nfrom torch.utils.data import Dataset\ntorch.manual_seed(0)\n\nclass D(Dataset):\n"
        "    def __getitem__(self, i):\n        return random.random()\n",
        "import random\nimport torch\ntorch.manual_seed(0)\nrandom.seed(0)\nrandom.shuffle(files)\n",
        "import numpy as np\nimport torch\ntorch.manual_seed(0)\nrng = np.random.default_rng(0)\nx = rng.normal(size=3)\n",
        "import random\nfrom lightning import seed_everything\nimport torch\nseed_everything(0)\ntorch.manual_seed(0)\nrandom.shuffle(files)\n",
        "import random\nimport torch\nfrom utils import seed_all\ntorch.manual_seed(0)\nseed_all(0)\nrandom.shuffle(files)\n",
        # torch not seeded either: SAN401's business
        "import random\nrandom.shuffle(files)\n",
    ]
    INVALID = [
        Invalid(
            "import random\nimport torch\n\ntorch.manual_seed(args.seed)\nrandom.shuffle(files)\n",
            line=5,
            fixed="import random\nimport torch\n\ntorch.manual_seed(args.seed)\nrandom.seed(args.seed)\nrandom.shuffle(files)\n",
        ),
        Invalid(
            "import numpy as np\nimport torch\n\ndef set_seed(seed):\n    torch.manual_seed(seed)\n    torch.cuda.manual_seed_all(seed)\n\n"
            "set_seed(1)\nidx = np.random.permutation(100)\n",
            line=9,
            fixed="import numpy as np\nimport torch\n\ndef set_seed(seed):\n    torch.manual_seed(seed)\n    np.random.seed(seed)\n    torch.cuda.manual_seed_all(seed)\n\n"
            "set_seed(1)\nidx = np.random.permutation(100)\n",
        ),
    ]

    def check(self, model: ProgramModel):
        seeds = seed_kinds(model)
        if "torch" not in seeds or "all" in seeds:
            return
        for lib in ("random", "numpy"):
            if lib in seeds:
                continue
            use = _first_use(model, lib)
            if use is None:
                continue
            yield self.finding(use, message=self._lib_message.format(lib=lib), fix=_fix(model, lib))


def _first_use(model: ProgramModel, lib: str):
    for call, qual in named_calls(model):
        module, _, fn = (qual or "").rpartition(".")
        if lib == "random" and module == "random" and fn in _RANDOM_FUNCTIONS or \
                lib == "numpy" and module == "numpy.random" and fn not in _NUMPY_NOT_GLOBAL:
            if not _in_worker_code(model, call):
                return call
    return None


_WORKER_METHODS = frozenset({"__getitem__", "__getitems__", "__iter__", "__next__", "__call__"})


def _in_worker_code(model: ProgramModel, node) -> bool:
    """Dataset / transform code: in DataLoader workers PyTorch seeds `random` and NumPy from torch's
    seed, so whether it is reproducible depends on `num_workers` — too uncertain to report."""
    for ancestor in model.ancestors(node):
        if isinstance(ancestor, cst.FunctionDef) and (
            ancestor.name.value in _WORKER_METHODS or "worker_init" in ancestor.name.value
        ):
            return True
        if isinstance(ancestor, cst.ClassDef) and any(
            (dotted_name(b.value) or "").endswith(("Dataset", "Sampler")) for b in ancestor.bases
        ):
            return True
    return False


def _fix(model: ProgramModel, lib: str) -> NodeFix | None:
    flow = flow_of(model)
    anchor = None
    for scope in flow.all_scopes():
        for e in scope.effects:
            if e.kind == SEED and e.detail == "torch" and e.direct:
                qual = model.call_name(e.site) or ""
                if qual == "torch.manual_seed":
                    anchor = e.site
                    break
        if anchor is not None:
            break
    if anchor is None or not anchor.args or anchor.args[0].keyword is not None:
        return None
    stmt = statement_of_call(model, anchor)
    if stmt is None:
        return None
    value = model.code_for(anchor.args[0].value)
    if lib == "random":
        alias = module_alias(model, "random")
        text = f"{alias}.seed({value})" if alias else None
    else:
        alias = module_alias(model, "numpy")
        text = f"{alias}.random.seed({value})" if alias else None
        if text is None:
            alias = module_alias(model, "numpy.random")
            text = f"{alias}.seed({value})" if alias else None
    if text is None:
        return None
    return NodeFix(f"Seed {lib} too", (NodeEdit("insert_after", stmt, text),), UNSAFE)
