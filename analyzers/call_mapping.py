"""How a call site maps onto the function it calls, for inlining a helper's effects: its parameters bound to the
call's arguments, the classes ``self`` may be (a class and its bases in this file), the methods of an instance of
a plain class of this file (``trainer.train()``), and the ``m.train() if flag else m.eval()`` idiom."""

from __future__ import annotations

import libcst as cst

from .model import ProgramModel
from .name_guesses import names_a_module_base
from .syntax import dotted_name
from .torch_api import CONFIG_TRAINING_RUNS


def calls_self_method(func_name: str) -> bool:
    """``self.method``: which function it calls depends on the class of ``self``."""
    head, _, rest = func_name.partition(".")
    return head == "self" and rest != "" and "." not in rest


def mode_by_flag(program, call: cst.Call, recv_name: str | None) -> bool:
    """``m.train() if training else m.eval()``: one branch of a conditional expression whose other branch sets
    the other mode of the same module, i.e. ``m.train(training)``."""
    parent = program.parent(call)
    if recv_name is None or not isinstance(parent, cst.IfExp):
        return False
    other = parent.orelse if parent.body is call else parent.body
    wanted = "eval" if call.func.attr.value == "train" else "train"
    return (isinstance(other, cst.Call) and not other.args and isinstance(other.func, cst.Attribute)
            and other.func.attr.value == wanted and dotted_name(other.func.value) == recv_name)


def class_chain(program: ProgramModel, class_name: str) -> list[str]:
    chain, seen = [class_name], {class_name}
    i = 0
    while i < len(chain) and len(chain) < 10:
        node = program.classes.get(chain[i])
        i += 1
        if node is None:
            continue
        for base in node.bases:
            name = dotted_name(base.value)
            if name and name in program.classes and name not in seen:
                seen.add(name)
                chain.append(name)
    return chain


def param_mapping(func: cst.FunctionDef, call: cst.Call, bound_self: bool) -> dict[str, str | None]:
    params = [p.name.value for p in func.params.posonly_params] + [p.name.value for p in func.params.params]
    if bound_self and params:
        params = params[1:]
    mapping: dict[str, str | None] = {}
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for name, arg in zip(params, positional):
        mapping[name] = dotted_name(arg.value)
    for arg in call.args:
        if arg.keyword is not None:
            mapping[arg.keyword.value] = dotted_name(arg.value)
    for p in list(func.params.params) + list(func.params.kwonly_params) + list(func.params.posonly_params):
        mapping.setdefault(p.name.value, None)
    if bound_self:
        mapping.pop("self", None)
    return mapping


def map_target(target: str | None, mapping: dict[str, str | None]) -> str | None:
    if target is None:
        return None
    head, dot, rest = target.partition(".")
    if head in mapping:
        mapped = mapping[head]
        if mapped is None:
            return None
        return mapped + dot + rest
    return target


def instance_class(program: ProgramModel, name: str) -> str | None:
    """The class of this module, not an ``nn.Module``, that ``name`` holds an instance of when every binding of it
    in the module is a call of that class (``conf = Configs()``, in ``train()`` and in ``evaluate()``): a
    module-level fact."""
    if name in program.imports:
        return None
    return _plain_class(program, _one_callee(program, name))


def local_instance_class(program: ProgramModel, name: str, use: cst.CSTNode) -> str | None:
    """The plain class of this module that ``name`` holds an instance of at ``use``: :func:`instance_class`, or,
    when the name is bound elsewhere too, the one class that every binding of it in the function around ``use``
    calls (``conf = Configs()`` in ``main()``, another ``conf`` in a helper)."""
    found = instance_class(program, name)
    if found is not None or name in program.imports:
        return found
    return _plain_class(program, _one_callee(program, name, program.enclosing_function(use)))


def _plain_class(program: ProgramModel, name: str | None) -> str | None:
    return name if name in program.classes and name not in program.module_classes else None


_MODULE_WIDE = object()  # :func:`_one_callee`: every binding of the module, wherever it is


def _one_callee(program: ProgramModel, name: str, function: object = _MODULE_WIDE) -> str | None:
    """The one name that every binding of ``name`` calls (``conf = Configs()``) — all the module's bindings, or
    those in ``function`` (None: the module level) —; None when they call different things, or bind something
    else."""
    callees = {b.value.func.value if type(b.value) is cst.Call and type(b.value.func) is cst.Name else None
               for b in program.bindings.get(name, ())
               if function is _MODULE_WIDE or program.enclosing_function(b.node) is function}
    return next(iter(callees)) if len(callees) == 1 else None


def own_mode_method(program: ProgramModel, func: cst.Attribute, self_class: str | None) -> bool:
    """``self.train()`` / ``trainer.train(samples)`` on a plain class of this module that defines ``train`` (or
    ``eval``) as a method of its own: a call of that method (a training loop, or a wrapper's switch that the
    inlined method performs), not the ``nn.Module`` mode switch. A class that may be an ``nn.Module`` (its base's
    name says so) is left to the switch. Module-level facts only (classes, their bases, function names)."""
    method = func.attr.value
    if method not in ("train", "eval"):
        return False
    recv = dotted_name(func.value)
    class_name = self_class if recv == "self" else instance_class(program, recv) if recv and "." not in recv else None
    if class_name is None or class_name in program.module_classes:
        return False
    for cls in class_chain(program, class_name):
        classdef = program.classes.get(cls)
        if classdef is None or any(names_a_module_base(program.qualname(base.value) or "") for base in classdef.bases):
            return False
        if f"{cls}.{method}" in program.functions:
            return True
    return False


def instance_method(program: ProgramModel, class_name: str, method: str, receiver: str | bool):
    """The flow's answer (model, FunctionInfo, bound self) for ``receiver.method()`` on an instance of
    ``class_name``: the method defined there or in a parent class of this file; ``receiver`` is True for
    ``self.method()``, the receiver's name otherwise."""
    for cls in class_chain(program, class_name):
        info = program.functions.get(f"{cls}.{method}")
        if info is not None:
            return program, info, receiver
    return None


def config_training_run(program: ProgramModel, call: cst.Call) -> tuple[str | None, bool]:
    """``conf.run()`` on an instance of a class derived from a configuration class whose ``run()`` trains (labml's
    ``TrainValidConfigs``): a class of this module, or one imported from a sibling module, its parents followed
    through the project. (The receiver, or None; whether the project's other modules were asked.)"""
    func = call.func
    if type(func) is not cst.Attribute or func.attr.value != "run" or call.args:
        return None, False
    recv = dotted_name(func.value)
    if not recv or "." in recv:
        return None, False
    class_name = local_instance_class(program, recv, call)
    if class_name is not None:
        derived, asked = derives_from_config_trainer(program, class_name)
    else:
        qual = imported_instance_class(program, recv, call)
        derived, asked = _config_trainer(program, qual) if qual is not None else (False, False)
    return (recv if derived else None), asked


def derives_from_config_trainer(program: ProgramModel, class_name: str) -> tuple[bool, bool]:
    """Whether the class ``class_name`` of this module derives from a configuration class whose ``run()`` trains,
    through its bases here and in sibling modules; and whether the project's other modules were asked."""
    asked = False
    for qual in outside_bases(program, class_name):
        derived, asked_here = _config_trainer(program, qual)
        asked = asked or asked_here
        if derived:
            return True, asked
    return False, asked


def _config_trainer(program: ProgramModel, qual: str) -> tuple[bool, bool]:
    """Whether the class ``qual`` (as this module names it) is, or derives from, a configuration class whose
    ``run()`` trains; and whether the project's other modules were asked."""
    if qual in CONFIG_TRAINING_RUNS:
        return True, False
    if program.project is None or "." not in qual:
        return False, False
    return bool(program.project.index.lineage(program.path, qual) & CONFIG_TRAINING_RUNS), True


def outside_bases(program: ProgramModel, class_name: str) -> list[str]:
    """The qualified names of the bases of ``class_name`` and of its parents in this module that are not classes
    of this module (imported, or of another package)."""
    return [qual for cls in class_chain(program, class_name) if cls in program.classes
            for base in program.classes[cls].bases
            if (qual := program.qualname(base.value)) is not None and qual not in program.classes]


def inherited_method(program: ProgramModel, class_name: str | None, receiver: str, method: str):
    """For ``receiver.method()`` when the method is defined in a sibling module of the project — by a parent of
    ``class_name`` (a plain class of this module whose own chain does not define it), or by the plain class imported
    from a sibling that ``receiver`` holds an instance of (``trainer = Trainer()``; ``class_name`` None) —: the
    flow's answer (model, FunctionInfo, receiver), or None; and whether the project was asked. Not for classes
    whose parents may be ``nn.Module``."""
    if class_name is not None:
        bases = outside_bases(program, class_name)
    else:
        bases = [qual] if (qual := imported_instance_class(program, receiver)) is not None else []
    index = program.project.index
    for qual in bases:
        if any(names_a_module_base(name) for name in index.lineage(program.path, qual)):
            return None, True
        found = index.method_of(program.path, qual, method)
        model = program.project.model_for(found[0]) if found is not None else None
        info = model.functions.get(found[1]) if model is not None else None
        if info is not None:
            return (model, info, receiver), True
    return None, bool(bases)


def imported_instance_class(program: ProgramModel, name: str, use: cst.CSTNode | None = None) -> str | None:
    """The qualified name of the class imported into this module that every binding of ``name`` in the module is a
    call of (``trainer = Trainer()``: a module-level fact), or, with ``use``, every binding of it in the function
    around ``use`` (``conf = MNISTConfigs()`` in ``main()``)."""
    if use is None:
        callee = None if name in program.imports else _one_callee(program, name)
    else:
        callee = _one_callee(program, name, program.enclosing_function(use))
    qual = program.imports.get(callee) if callee is not None else None
    return qual if qual is not None and "." in qual else None
