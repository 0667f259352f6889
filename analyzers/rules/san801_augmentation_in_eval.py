from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..dataflow import Dataflow
from ..lookups import calls_by_callee, named_calls
from ..model import Binding, ProgramModel
from ..name_guesses import EVAL_ROLE, TRAIN_ROLE, name_role
from ..rule import Invalid, Rule, Valid
from ..syntax import dotted_name, string_literal, walk
from ..torch_api import AUGMENTATION_LIBRARIES
from ..data_values import is_random_augmentation

_DATASET_ROLE_KEYWORDS = ("split", "subset", "mode", "phase", "stage")
_TRANSFORM_KEYWORDS = ("transform", "transforms", "img_transform", "image_transform", "preprocess")


class AugmentationInEval(Rule):
    """A random augmentation (`RandomCrop`, `RandomHorizontalFlip`, `ColorJitter`, `RandAugment`, ...,
    torchvision / albumentations / kornia) in the transforms of a validation or test dataset: a transform
    pipeline named or keyed *val* / *test* / *eval*, the `transform=` of a dataset built with `train=False`,
    `split="val"` or bound to a validation name — including the training pipeline passed to a validation
    dataset (by keyword, or by position to a dataset class of the module: `Pairs(root, augment, "test")`)."""

    code = "SAN801"
    name = "augmentation-in-eval"
    message = "random augmentation in a validation / test transform: evaluation becomes noisy and biased"
    why = """
        Validation and test data must be seen the same way every time. Random crops, flips and colour
        jitter make the metric noisy from run to run (so early stopping and model selection chase noise)
        and systematically pessimistic, and the numbers stop being comparable to anyone else's.
        Evaluation transforms should be deterministic: resize, center-crop, to-tensor, normalize.
    """
    example = """
        val_tf = T.Compose([T.RandomResizedCrop(224), T.ToTensor(), normalize])   # SAN801
    """
    fix_doc = """
        Use a deterministic pipeline for evaluation, e.g. `T.Resize(256), T.CenterCrop(224), T.ToTensor(),
        normalize`; keep the random transforms in the training pipeline only. (For deliberate test-time
        augmentation, name it `tta_...` or suppress with `# noqa: SAN801`.)
    """
    known_problems = """
        Validation pipelines are recognised by names and dataset arguments. A pipeline that an unnamed helper of
        the same module builds unconditionally and returns takes the role of the helper's call sites
        (`self.test_transform = self._default_transform()`); pipelines passed through configuration objects,
        built in other modules or assembled under a condition are not followed. Deliberate test-time
        augmentation must be named `tta_...` or suppressed.
    """
    fix_safety = """
        No fix: which deterministic transforms replace the random ones is a decision.
    """
    VALID = [
        Valid("""
            import torchvision.transforms as T
            val_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
            train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
        """),
        Valid("""
            from torchvision import transforms
            data_transforms = {
                'train': transforms.Compose([transforms.RandomCrop(32, padding=4)]),
                'val': transforms.Compose([transforms.ToTensor()]),
            }
        """),
        # deliberate test-time augmentation
        Valid("""
            import torchvision.transforms as T
            tta_transforms = [T.Compose([T.RandomHorizontalFlip(p=1.0), T.ToTensor()])]
        """),
        Valid("""
            import torchvision.transforms as T
            test_tf = T.Compose([T.RandomHorizontalFlip(p=1.0), T.ToTensor()])
        """),
        Valid("""
            import torchvision
            import torchvision.transforms as T
            train_set = torchvision.datasets.CIFAR10('data', train=True, transform=T.Compose([T.RandomCrop(32, 4), T.ToTensor()]))
        """),
        # a helper that adds its random crop only for training builds a deterministic test pipeline
        Valid("""
            import torchvision.transforms as T

            def build_transform(is_train):
                if is_train:
                    return T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])
                return T.Compose([T.ToTensor()])

            train_tf = build_transform(True)
            test_tf = build_transform(False)
        """),
        Valid("""
            import torchvision.transforms as T
            from torch.utils.data import Dataset

            class Pairs(Dataset):
                def __init__(self, root, transforms_, mode):
                    self.transform = T.Compose(transforms_)

            augment = [T.RandomCrop(256), T.ToTensor()]
            plain = [T.Resize(256), T.ToTensor()]
            train_set = Pairs("data", augment, "train")
            test_set = Pairs("data", plain, "test")
        """),
        Valid("""
            import torchvision.transforms as T

            def make_transform(train):
                return T.Compose([T.RandomCrop(32, padding=4) if train else T.CenterCrop(32), T.ToTensor()])

            val_tf = make_transform(False)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torchvision.transforms as T
            val_transform = T.Compose([
                T.RandomResizedCrop(224),
                T.ToTensor(),
            ])
            """,
            line=3,
        ),
        Invalid(
            """
            from torchvision import transforms
            data_transforms = {
                'train': transforms.Compose([transforms.RandomCrop(32)]),
                'test': transforms.Compose([transforms.ColorJitter(0.4, 0.4, 0.4), transforms.ToTensor()]),
            }
            """,
            line=4,
        ),
        Invalid(
            """
            import torchvision
            import torchvision.transforms as T
            testset = torchvision.datasets.CIFAR10('data', train=False, transform=T.Compose([T.RandomHorizontalFlip(), T.ToTensor()]))
            """,
            line=3,
        ),
        # the training pipeline handed to the validation dataset
        Invalid(
            """
            from torchvision import datasets, transforms
            transform = transforms.Compose([transforms.RandomResizedCrop(224), transforms.ToTensor()])
            train_ds = datasets.ImageFolder('data/train', transform=transform)
            val_ds = datasets.ImageFolder('data/val', transform=transform)
            """,
            line=4,
        ),
        # pytorch/examples' ImageNet layout, transform passed positionally
        Invalid(
            """
            import os
            import torch
            from torchvision import datasets, transforms
            valdir = os.path.join(args.data, 'val')
            val_loader = torch.utils.data.DataLoader(
                datasets.ImageFolder(valdir, transforms.Compose([
                    transforms.RandomResizedCrop(224),
                    transforms.ToTensor(),
                ])),
                batch_size=256, shuffle=False)
            """,
            line=7,
        ),
        # a dataset class of the module takes the transforms and its split by position
        Invalid(
            """
            import torchvision.transforms as T
            from torch.utils.data import DataLoader, Dataset

            class Pairs(Dataset):
                def __init__(self, root, transforms_, mode):
                    self.transform = T.Compose(transforms_)

            augment = [T.RandomCrop(256), T.RandomHorizontalFlip(), T.ToTensor()]
            train_loader = DataLoader(Pairs("data", augment, "train"), shuffle=True)
            valid_loader = DataLoader(Pairs("data", augment, "test"))
            """,
            line=10,
        ),
        # an unnamed helper builds the pipeline; its caller stores it as the test transform
        Invalid(
            """
            import torchvision.transforms as T

            class Digits:
                def __init__(self):
                    self.train_transform = self._default_transform()
                    self.test_transform = self._default_transform()

                def _default_transform(self):
                    transform = T.Compose([
                        T.RandomCrop(28, padding=4),
                        T.ToTensor(),
                    ])
                    return transform
            """,
            line=10,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        reported: set[int] = set()
        for call, qual in named_calls(program):
            if qual is None or not qual.startswith(AUGMENTATION_LIBRARIES):
                continue
            if not is_random_augmentation(qual, call):
                continue
            if flow is None:
                flow = ctx.dataflow
            if _context_role(program, call, flow) == EVAL_ROLE and id(call) not in reported:
                reported.add(id(call))
                yield self.finding(call)
        # `val_ds = Dataset(..., transform=train_tf)`: a random pipeline reused for evaluation
        classes = program.classes
        for call in program.calls:
            func = call.func
            parameters = _init_parameters(program, call) if type(func) is cst.Name and func.value in classes else _NONE
            for arg in call.args:
                keyword = arg.keyword.value if arg.keyword is not None else parameters.get(id(arg))
                if keyword is None or keyword.rstrip("_") not in _TRANSFORM_KEYWORDS:
                    continue
                if not isinstance(arg.value, cst.Name) or name_role(arg.value.value) == EVAL_ROLE:
                    continue
                if _dataset_role(program, call) != EVAL_ROLE:
                    continue
                if flow is None:
                    flow = ctx.dataflow
                defs = flow.definitions(arg.value)
                if not defs or not all(f is flow and _has_random(program, v) for f, v in defs):
                    continue
                yield self.finding(arg.value, message=(
                    "this validation / test dataset gets a transform with random augmentation "
                    f"({arg.value.value}); use a deterministic evaluation pipeline"))


def _has_random(program: ProgramModel, expr: cst.BaseExpression) -> bool:
    for node in walk(expr):
        if isinstance(node, cst.Call):
            qual = program.call_name(node)
            if qual is not None and qual.startswith(AUGMENTATION_LIBRARIES) and is_random_augmentation(qual, node):
                return True
    return False


_NONE: dict[int, str] = {}


def _init_parameters(program: ProgramModel, call: cst.Call) -> dict[int, str]:
    """The parameter of ``__init__`` each positional argument of ``call`` is bound to (by ``id`` of the
    argument), when ``call`` builds a class of this module (``ImageDataset(root, transforms_, "test")``)."""
    if not isinstance(call.func, cst.Name) or any(arg.star for arg in call.args):
        return {}
    classdef = program.classes.get(call.func.value)
    if classdef is None:
        return {}
    init = next((s for s in classdef.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
    if init is None:
        return {}
    names = [p.name.value for p in (*init.params.posonly_params, *init.params.params)][1:]
    positional = [arg for arg in call.args if arg.keyword is None]
    return {id(arg): name for arg, name in zip(positional, names)}


def _assigned_name(program: ProgramModel, expr: cst.CSTNode) -> str | None:
    parent = program.parent(expr)
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
        return dotted_name(parent.targets[0].target)
    if isinstance(parent, cst.AnnAssign):
        return dotted_name(parent.target)
    return None


def _dataset_role(program: ProgramModel, call: cst.Call) -> str | None:
    """What a dataset constructor call is for: train=..., split='val', its target name, a 'val' folder."""
    roles: set[str | None] = {name_role(_assigned_name(program, call))}
    holder = program.parent(call)
    if isinstance(holder, cst.Arg) and isinstance(program.parent(holder), cst.Call) \
            and (program.call_name(program.parent(holder)) or "").endswith("DataLoader"):
        roles.add(name_role(_assigned_name(program, program.parent(holder))))  # val_loader = DataLoader(Dataset(...))
    parameters = _init_parameters(program, call)
    for arg in call.args:
        keyword = arg.keyword.value if arg.keyword is not None else parameters.get(id(arg))
        if keyword == "train" and isinstance(arg.value, cst.Name):
            roles.add(TRAIN_ROLE if arg.value.value == "True" else EVAL_ROLE if arg.value.value == "False" else None)
        elif keyword in _DATASET_ROLE_KEYWORDS:
            roles.add(name_role(string_literal(arg.value)))
        elif arg.keyword is None and arg is call.args[0] or arg.keyword is not None and arg.keyword.value in (
                "root", "path", "data_dir", "root_dir", "img_dir", "image_dir"):
            text = string_literal(arg.value)
            if text is None and isinstance(arg.value, cst.Call) and arg.value.args:
                text = string_literal(arg.value.args[-1].value)  # os.path.join(root, "val")
            if text is None and isinstance(arg.value, cst.Name):
                roles.add(name_role(arg.value.value))  # valdir
            elif text is not None and text.rstrip("/").rsplit("/", 1)[-1].lower() in (
                    "val", "valid", "validation", "test", "train", "training", "eval"):
                roles.add(name_role(text))
    roles.discard(None)
    return roles.pop() if len(roles) == 1 else None


def _context_role(program: ProgramModel, node: cst.CSTNode, flow: Dataflow | None = None, depth: int = 0) -> str | None:
    """Walk up from a transform to where its pipeline is named or used. With ``flow``, a pipeline that an
    unnamed helper builds and returns takes the role of the helper's call sites (see :func:`_callers_role`)."""
    current = node
    for parent in program.ancestors(node):
        if isinstance(parent, cst.DictElement) and parent.value is current:
            return name_role(string_literal(parent.key))
        if isinstance(parent, cst.Arg) and parent.keyword is not None:
            keyword = parent.keyword.value
            call = program.parent(parent)
            if keyword in _TRANSFORM_KEYWORDS and isinstance(call, cst.Call):
                return _dataset_role(program, call)
            role = name_role(keyword)
            if role is not None:
                return role
        if isinstance(parent, (cst.Assign, cst.AnnAssign)):
            name = _assigned_name(program, current)
            role = name_role(name)
            if role is None and flow is not None and name is not None and "." not in name:
                role = _returned_name_role(program, flow, node, parent, name, depth)
            return role
        if isinstance(parent, cst.Return):
            function = program.enclosing_function(parent)
            if function is None:
                return None
            role = name_role(function.name.value)
            if role is None and flow is not None and _unconditional(program, node, function):
                role = _callers_role(program, flow, function, depth)
            return role
        if isinstance(parent, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.SimpleStatementLine)):
            return None
        if isinstance(parent, cst.Arg) and parent.keyword is None:
            call = program.parent(parent)
            if isinstance(call, cst.Call) and (program.call_name(call) or "").endswith(
                    ("torchvision.datasets.ImageFolder", "torchvision.datasets.DatasetFolder")) \
                    and len(call.args) > 1 and call.args[1] is parent:
                return _dataset_role(program, call)  # ImageFolder(root, transform)
        if isinstance(parent, cst.Call) and current is not parent.func:
            qual = program.call_name(parent) or ""
            if not (qual.startswith(AUGMENTATION_LIBRARIES) or qual == "torch.nn.Sequential"):
                return None  # an argument of something else: we do not know what it does
        current = parent
    return None


_MAX_FOLLOW = 3  # helpers returning helpers' pipelines: how many calls deep the role is looked for
_BRANCHES = (cst.If, cst.IfExp, cst.For, cst.While, cst.Try)


def _unconditional(program: ProgramModel, node: cst.CSTNode, function: cst.FunctionDef) -> bool:
    """``node`` runs on every call of ``function``: no ``if`` / conditional expression / loop / ``try`` between
    them (a helper that adds its random crops only ``if is_train`` builds a deterministic pipeline otherwise)."""
    for ancestor in program.ancestors(node):
        if ancestor is function:
            return True
        if isinstance(ancestor, _BRANCHES):
            return False
    return False


def _returned_name_role(program: ProgramModel, flow: Dataflow, node: cst.CSTNode, assign: cst.CSTNode, name: str,
                        depth: int) -> str | None:
    """``transform = T.Compose([...])`` then ``return transform`` in an unnamed helper: the role of the helper's
    call sites, when that assignment is what every ``return transform`` of the helper gives."""
    function = program.enclosing_function(assign)
    if function is None or not _unconditional(program, node, function):
        return None
    returns = [n for n in walk(function.body) if isinstance(n, cst.Return) and program.enclosing_function(n) is function]
    if not returns:
        return None
    for ret in returns:
        if not (isinstance(ret.value, cst.Name) and ret.value.value == name):
            return None
        binding = flow.reaching(name, ret.value)
        if not isinstance(binding, Binding) or binding.node is not assign or not _unconditional(program, ret, function):
            return None
    return name_role(function.name.value) or _callers_role(program, flow, function, depth)


def _callers_role(program: ProgramModel, flow: Dataflow, function: cst.FunctionDef, depth: int) -> str | None:
    """The role of what an unnamed helper returns, from its call sites in this module: ``self.test_transform =
    self._get_default_transform()`` makes the helper's pipeline a test pipeline. A pipeline that reaches
    evaluation at any call site is an evaluation pipeline (it is one there)."""
    if depth >= _MAX_FOLLOW:
        return None
    by_name, by_method = calls_by_callee(program)
    name = function.name.value
    class_name = flow.class_of(function)
    if class_name is None:
        if program.parent(function) is not program.module:
            return None
        sites = by_name.get(name, [])
    else:
        sites = [call for call in by_method.get(name, ())
                 if isinstance(call.func.value, cst.Name) and call.func.value.value == "self"
                 and flow.class_of(flow.scope(call)) == class_name]
    roles = {_context_role(program, site, flow, depth + 1) for site in sites if flow.scope(site) is not function}
    if EVAL_ROLE in roles:
        return EVAL_ROLE
    return TRAIN_ROLE if roles == {TRAIN_ROLE} else None
