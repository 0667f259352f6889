from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import BACKWARD, FIT, OPT_STEP, SEED, flow_of
from ..lookups import module_alias, named_calls
from ..model import ProgramModel
from ..rule import UNSAFE, InsertAfter, InsertBefore, Invalid, NodeFix, Rule, Valid
from ..syntax import dotted_name, first_import_block_end
from ..torch_api import SEEDING_CLIS


def seed_kinds(program: ProgramModel) -> set[str]:
    """What the module seeds anywhere (its own calls, and helpers of sibling modules it calls):
    "torch", "random", "numpy", or "all" (seed_everything / set_seed / an unknown *seed* helper)."""
    return program.cached(_seed_kinds)


def _seed_kinds(program: ProgramModel) -> set[str]:
    flow = flow_of(program)
    kinds: set[str] = set()
    for scope in flow.all_scopes():
        for e in scope.effects:
            if e.kind == SEED:
                kinds.add(e.detail)
    for _, qual in named_calls(program):
        if (qual or "").rsplit(".", 1)[-1] in SEEDING_CLIS:
            kinds.add("all")
    return kinds


class UnseededTraining(Rule):
    """A training entry point — module-level code (a script, or the `if __name__ == "__main__":` block
    and what it calls — the methods of an instance of a class of the file (`trainer.train()`), also those it
    inherits from a plain class of a sibling module or that an imported plain class defines, and the workers it
    starts with `torch.multiprocessing.spawn` included) that runs `backward()` +
    `optimizer.step()`, Lightning's `trainer.fit()` or a configuration framework's training run (labml's
    `conf.run()` on a `TrainValidConfigs` subclass, also through parent classes in sibling modules) —
    that never seeds torch. `torch.manual_seed`, `seed_everything` (Lightning), `set_seed`
    (transformers / accelerate) and local or imported helpers that call them all count."""

    code = "SAN401"
    name = "unseeded-training"
    message = "this training script never seeds torch: runs are not reproducible"
    why = """
        Without a fixed seed, weight initialisation, data order, dropout masks and augmentation change
        on every run, so two runs of the same code differ and a change cannot be told apart from noise.
        Karpathy's recipe starts with "fix random seed" for exactly that reason.
    """
    example = """
        model = Net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            ...
            loss.backward()
            optimizer.step()
    """
    fix_doc = """
        Seed every generator the script uses, before the model is built: `torch.manual_seed(0)` plus
        `random.seed(0)` / `np.random.seed(0)` when those modules are used (or `seed_everything(0)` /
        `transformers.set_seed(0)`). The quick fix inserts such a block after the imports (or at the top of
        the `__main__` block).
    """
    known_problems = """
        Seeding helpers are recognised by name and by what the rule can read of them (a seed configuration applied
        with `conf.set_seed.set()`, labml's `SeedConfigs`, counts); seeding done by a framework or an entry point
        outside the script (a launcher, another config system) is not seen.
    """
    fix_safety = """
        Unsafe: inserting `torch.manual_seed(0)` makes runs repeat, which changes results from run to run
        differently than before and fixes one seed the author did not choose.
    """
    VALID = [
        Valid("""
            import torch
            torch.manual_seed(0)
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        """),
        Valid("""
            import torch
            from lightning import seed_everything

            def main():
                seed_everything(42)
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()

            if __name__ == '__main__':
                main()
        """),
        Valid("""
            from transformers import set_seed
            set_seed(1)
            for batch in loader:
                model(**batch).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        """),
        # a local helper
        Valid("""
            import random
            import torch

            def fix_seeds(s):
                random.seed(s)
                torch.manual_seed(s)

            fix_seeds(0)
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        """),
        # a library module: no entry point
        Valid("""
            def train_one_epoch(model, opt, loader):
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
        """),
    ]
    INVALID = [
        # the training runs in a method of an experiment object
        Invalid(
            """
            import torch

            class Experiment:
                def __init__(self):
                    self.model = torch.nn.Linear(8, 1)
                    self.optimizer = torch.optim.Adam(self.model.parameters())

                def train(self, loader):
                    for x, y in loader:
                        loss = (self.model(x) - y).pow(2).mean()
                        self.optimizer.zero_grad()
                        loss.backward()
                        self.optimizer.step()

            if __name__ == "__main__":
                experiment = Experiment()
                experiment.train(make_loader())
            """,
            line=17,
        ),
        # the training runs in the worker processes that spawn starts
        Invalid(
            """
            import torch

            def main_worker(rank, args):
                model = torch.nn.Linear(8, 1)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in args.loader:
                    loss = (model(x) - y).pow(2).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

            if __name__ == "__main__":
                torch.multiprocessing.spawn(main_worker, (parse_args(),), nprocs=2)
            """,
            line=13,
        ),
        Invalid(
            """
            import torch
            import numpy as np

            model = Net()
            noise = np.random.rand(3)
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
            """,
            line=8,
            fixed="""
            import torch
            import numpy as np
            torch.manual_seed(0)
            np.random.seed(0)

            model = Net()
            noise = np.random.rand(3)
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
            """,
        ),
        Invalid(
            """
            import torch

            def main():
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()

            if __name__ == '__main__':
                main()
            """,
            line=10,
            fixed="""
            import torch

            def main():
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()

            if __name__ == '__main__':
                torch.manual_seed(0)
                main()
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        effects = flow.scope(program.module).effects
        if not _trains(effects):
            return
        seeds = seed_kinds(program)
        if seeds & {"torch", "all"}:
            return
        first = next(e for e in effects if e.kind in (BACKWARD, FIT))
        yield self.finding(first.site, fix=_fix(program, first))


def _trains(effects) -> bool:
    """A loop that backpropagates and steps an optimizer (or Lightning's fit) runs at module level."""
    if any(e.kind == FIT for e in effects):
        return True
    loops_with: dict[int, set[str]] = {}
    for e in effects:
        if e.kind in (BACKWARD, OPT_STEP):
            for c in e.ctx:
                if isinstance(c, (cst.For, cst.While)):
                    loops_with.setdefault(id(c), set()).add(e.kind)
    return any(len(kinds) == 2 for kinds in loops_with.values())


def _is_main_guard(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.If):
        return False
    test = stmt.test
    return isinstance(test, cst.Comparison) and dotted_name(test.left) == "__name__"


def seeding_lines(program: ProgramModel, value: str = "0") -> list[str] | None:
    torch = module_alias(program, "torch")
    if torch is None:
        return None
    lines = [f"{torch}.manual_seed({value})"]
    used = {(qual or "").rsplit(".", 1)[0] for _, qual in named_calls(program)}
    rnd = module_alias(program, "random")
    if rnd is not None and "random" in used:
        lines.append(f"{rnd}.seed({value})")
    np_alias = module_alias(program, "numpy")
    if np_alias is not None and "numpy.random" in used:
        lines.append(f"{np_alias}.random.seed({value})")
    return lines


def _fix(program: ProgramModel, first) -> NodeFix | None:
    lines = seeding_lines(program)
    if lines is None:
        return None
    text = "\n".join(lines)
    top = first.site
    while program.parent(top) is not None and program.parent(top) is not program.module:
        top = program.parent(top)
    if _is_main_guard(top) and isinstance(top.body, cst.IndentedBlock) and top.body.body:
        return NodeFix("Seed torch", (InsertBefore(top.body.body[0], text),), UNSAFE)
    anchor = first_import_block_end(program)
    if anchor is None:
        return None
    # every statement between the imports and the training must come after the seeding: it does.
    return NodeFix("Seed torch", (InsertAfter(anchor, text),), UNSAFE)
