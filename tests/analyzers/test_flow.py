"""The training-loop model (analyzers/flow.py): effects in order, helpers inlined, contexts."""

from __future__ import annotations

import textwrap

import libcst as cst
from torchsanity.analyzers.flow import (
    BACKWARD,
    EVAL,
    FORWARD,
    OPT_STEP,
    SCHED_STEP,
    SEED,
    TRAIN,
    ZERO_GRAD,
    flow_of,
)
from torchsanity.analyzers.lookups import int_value, is_batch_loop, range_stop
from torchsanity.analyzers.model import ProgramModel
from torchsanity.analyzers.project import Project


def build(src: str, path: str = "<string>", project=None) -> ProgramModel:
    return ProgramModel.build(cst.parse_module(textwrap.dedent(src)), path, project=project)


def kinds(effects):
    return [(e.kind, e.target) for e in effects]


def test_effects_in_execution_order():
    program = build("""
        for x, y in loader:
            optimizer.zero_grad()
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            optimizer.step()
            scheduler.step()
    """)
    effects = flow_of(program).loop_effects(program.loops[0])
    assert kinds(effects) == [
        (ZERO_GRAD, "optimizer"), (FORWARD, "model"), (BACKWARD, "loss"), (OPT_STEP, "optimizer"),
        (SCHED_STEP, "scheduler"),
    ]


def test_backward_forms_and_their_loss():
    program = build("""
        scaler.scale(l1).backward()
        accelerator.backward(l2)
        fabric.backward(l3)
        self.manual_backward(l4)
        l5.backward()
        torch.autograd.backward(l6)
    """)
    effects = flow_of(program).scope(program.module).effects
    assert [e.kind for e in effects] == [BACKWARD] * 6
    assert [program.code_for(e.arg) for e in effects] == ["l1", "l2", "l3", "l4", "l5", "l6"]


def test_step_forms():
    program = build("""
        import torch
        opt = torch.optim.SGD(params, lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, 10)
        opt.step()
        scaler.step(opt)
        sched.step()
        env.step(action)
        optimizer_g.step(closure)
    """)
    effects = flow_of(program).scope(program.module).effects
    assert kinds(effects) == [(OPT_STEP, "opt"), (OPT_STEP, "opt"), (SCHED_STEP, "sched"), (OPT_STEP, "optimizer_g")]
    assert effects[-1].arg is not None  # the closure


def test_zero_grad_forms():
    program = build("""
        opt.zero_grad()
        model.zero_grad(set_to_none=True)
        p.grad = None
        p.grad.zero_()
        p.grad.data.zero_()
        for q in params:
            q.grad = None
        utils.zero_grads(model)
    """)
    effects = flow_of(program).scope(program.module).effects
    assert [e.kind for e in effects] == [ZERO_GRAD] * 7


def test_modes_seeds_and_trainer_train():
    program = build("""
        import torch, random
        model.eval()
        model.train()
        model.train(False)
        model.train(is_training)
        trainer.train()
        torch.manual_seed(0)
        random.seed(0)
        seed_everything(1)
    """)
    effects = flow_of(program).scope(program.module).effects
    assert [(e.kind, e.flag) for e in effects if e.kind in (EVAL, TRAIN)] == [
        (EVAL, False), (TRAIN, True), (TRAIN, False), (TRAIN, None)]
    assert [e.detail for e in effects if e.kind == SEED] == ["torch", "random", "all"]


def test_helpers_are_inlined_with_arguments_mapped():
    program = build("""
        def step(opt, m):
            m.train()
            opt.zero_grad()
            opt.step()

        for x in loader:
            step(optimizer, net)
    """)
    loop = program.loops[0]
    effects = flow_of(program).loop_effects(loop)
    assert kinds(effects) == [(TRAIN, "net"), (ZERO_GRAD, "optimizer"), (OPT_STEP, "optimizer")]
    assert all(not e.direct and program.code_for(e.site) == "step(optimizer, net)" for e in effects)


def test_methods_through_self_and_recursion_guard():
    program = build("""
        class Trainer:
            def clear(self):
                self.opt.zero_grad()
                self.clear()

            def fit(self):
                for b in self.loader:
                    self.clear()
                    self.loss(b).backward()
                    self.opt.step()
    """)
    loop = program.loops[0]
    assert [e.kind for e in flow_of(program).loop_effects(loop)] == [ZERO_GRAD, BACKWARD, OPT_STEP]


def test_no_grad_contexts_and_decorators():
    program = build("""
        import torch

        @torch.no_grad()
        def a(model, x):
            return model(x)

        def b(model, x):
            with torch.inference_mode():
                return model(x)

        def c(model, x, flag):
            with torch.set_grad_enabled(flag):
                return model(x)

        def d(model, x):
            with torch.set_grad_enabled(False):
                return model(x)

        def e(model, x):
            return model(x)
    """)
    flow = flow_of(program)
    got = {name: [eff.nograd for eff in flow.scope(program.functions[name].node).effects if eff.kind == FORWARD]
           for name in "abcde"}
    assert got == {"a": [True], "b": [True], "c": [None], "d": [True], "e": [False]}


def test_closure_is_inlined_at_the_step():
    program = build("""
        def closure():
            optimizer.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            return loss

        for i in range(10):
            optimizer.step(closure)
    """)
    effects = flow_of(program).loop_effects(program.loops[0])
    assert [e.kind for e in effects] == [ZERO_GRAD, FORWARD, BACKWARD, OPT_STEP]


def test_cross_file_helpers(tmp_path):
    (tmp_path / "engine.py").write_text(textwrap.dedent("""
        def train_one_epoch(model, optimizer, loader):
            for x, y in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
    """))
    main = tmp_path / "main.py"
    main.write_text("from engine import train_one_epoch\nfor epoch in range(3):\n    train_one_epoch(net, opt, dl)\n")
    project = Project(tmp_path)
    program = build(main.read_text(), str(main), project)
    effects = flow_of(program).loop_effects(program.loops[0])
    assert kinds(effects) == [(ZERO_GRAD, "opt"), (FORWARD, "net"), (BACKWARD, None), (OPT_STEP, "opt")]


def test_cross_file_import_cycle_terminates(tmp_path):
    (tmp_path / "a.py").write_text("from b import g\n\ndef f():\n    g()\n")
    (tmp_path / "b.py").write_text("from a import f\n\ndef g():\n    f()\n    opt.step()\n")
    project = Project(tmp_path)
    program = project.model_for(tmp_path / "a.py")
    effects = flow_of(program).scope(program.functions["f"].node).effects
    assert [e.kind for e in effects] == [OPT_STEP]


def test_flow_is_cached_on_the_model():
    program = build("for x in y:\n    opt.step()\n")
    assert flow_of(program) is flow_of(program)


def test_epoch_counts_and_batch_loops():
    program = build("""
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--num-epochs", type=int, default=12)
        args = parser.parse_args()
        EPOCHS = 7
        for epoch in range(args.num_epochs):
            for x, y in train_loader:
                pass
        for epoch in range(1, EPOCHS):
            for batch in tqdm(enumerate(dl)):
                pass
    """)
    outer1, inner1, outer2, inner2 = program.loops
    assert range_stop(program, outer1) == (True, 12)
    assert range_stop(program, outer2) == (True, 7)
    assert is_batch_loop(program, inner1) and is_batch_loop(program, inner2)
    assert not is_batch_loop(program, outer1)
    assert int_value(program, cst.parse_expression("3")) == 3


def test_half_typed_code_does_not_raise():
    for src in ["for x in :\n", "def f(:\n", "opt.step(\n"]:
        try:
            module = cst.parse_module(src)
        except cst.ParserSyntaxError:
            continue
        program = ProgramModel.build(module)
        list(flow_of(program).all_scopes())
