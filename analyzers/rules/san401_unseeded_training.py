from __future__ import annotations

import libcst as cst

from ..flow import (
    BACKWARD,
    FIT,
    OPT_STEP,
    SEED,
    first_import_block_end,
    flow_of,
    module_alias,
    named_calls,
)
from ..model import ProgramModel, dotted_name
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE

_CLI_SEEDING = ("LightningCLI", "cli_main")


def seed_kinds(model: ProgramModel) -> set[str]:
    """What the module seeds anywhere (its own calls, and helpers of sibling modules it calls):
    "torch", "random", "numpy", or "all" (seed_everything / set_seed / an unknown *seed* helper)."""
    cached = model.__dict__.get("_torchsanity_seed_kinds")
    if cached is not None:
        return cached
    flow = flow_of(model)
    kinds: set[str] = set()
    for scope in flow.all_scopes():
        for e in scope.effects:
            if e.kind == SEED:
                kinds.add(e.detail)
    for _, qual in named_calls(model):
        if (qual or "").rsplit(".", 1)[-1] in _CLI_SEEDING:
            kinds.add("all")
    model.__dict__["_torchsanity_seed_kinds"] = kinds
    return kinds


class UnseededTraining(Rule):
    """A training entry point — module-level code (a script, or the `if __name__ == "__main__":` block
    and what it calls) that runs `backward()` + `optimizer.step()` or Lightning's `trainer.fit()` —
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
        Seeding helpers are recognised by name and by what the rule can read of them; seeding done by a
        framework or an entry point outside the script (a launcher, a config system) is not seen.
    """
    fix_safety = """
        Unsafe: inserting `torch.manual_seed(0)` makes runs repeat, which changes results from run to run
        differently than before and fixes one seed the author did not choose.
    """
    VALID = [
        "import torch\ntorch.manual_seed(0)\nfor x, y in loader:\n    opt.zero_grad()\n    loss_fn(model(x), y).backward()\n    opt.step()\n",
        "import torch\nfrom lightning import seed_everything\n\ndef main():\n    seed_everything(42)\n    for x, y in loader:\n"
        "        opt.zero_grad()\n        loss_fn(model(x), y).backward()\n        opt.step()\n\nif __name__ == '__main__':\n    main()\n",
        "from transformers import set_seed\nset_seed(1)\nfor batch in loader:\n    model(**batch).loss.backward()\n    optimizer.step()\n    optimizer.zero_grad()\n",
        # a local helper
        "import random\nimport torch\n\ndef fix_seeds(s):\n    random.seed(s)\n    torch.manual_seed(s)\n\nfix_seeds(0)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    loss_fn(model(x), y).backward()\n    opt.step()\n",
        # a library module: no entry point
        "def train_one_epoch(model, opt, loader):\n    for x, y in loader:\n        opt.zero_grad()\n        loss_fn(model(x), y).backward()\n        opt.step()\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nimport numpy as np\n\nmodel = Net()\nnoise = np.random.rand(3)\nfor x, y in loader:\n    opt.zero_grad()\n"
            "    loss_fn(model(x), y).backward()\n    opt.step()\n",
            line=8,
            fixed="import torch\nimport numpy as np\ntorch.manual_seed(0)\nnp.random.seed(0)\n\nmodel = Net()\nnoise = np.random.rand(3)\nfor x, y in loader:\n    opt.zero_grad()\n"
            "    loss_fn(model(x), y).backward()\n    opt.step()\n",
        ),
        Invalid(
            "import torch\n\ndef main():\n    for x, y in loader:\n        opt.zero_grad()\n        loss_fn(model(x), y).backward()\n        opt.step()\n\n"
            "if __name__ == '__main__':\n    main()\n",
            line=10,
            fixed="import torch\n\ndef main():\n    for x, y in loader:\n        opt.zero_grad()\n        loss_fn(model(x), y).backward()\n        opt.step()\n\n"
            "if __name__ == '__main__':\n    torch.manual_seed(0)\n    main()\n",
        ),
    ]

    def check(self, model: ProgramModel):
        flow = flow_of(model)
        effects = flow.scope(model.module).effects
        if not _trains(effects):
            return
        seeds = seed_kinds(model)
        if seeds & {"torch", "all"}:
            return
        first = next(e for e in effects if e.kind in (BACKWARD, FIT))
        yield self.finding(first.site, fix=_fix(model, first))


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


def seeding_lines(model: ProgramModel, value: str = "0") -> list[str] | None:
    torch = module_alias(model, "torch")
    if torch is None:
        return None
    lines = [f"{torch}.manual_seed({value})"]
    used = {(qual or "").rsplit(".", 1)[0] for _, qual in named_calls(model)}
    rnd = module_alias(model, "random")
    if rnd is not None and "random" in used:
        lines.append(f"{rnd}.seed({value})")
    np_alias = module_alias(model, "numpy")
    if np_alias is not None and "numpy.random" in used:
        lines.append(f"{np_alias}.random.seed({value})")
    return lines


def _fix(model: ProgramModel, first) -> NodeFix | None:
    lines = seeding_lines(model)
    if lines is None:
        return None
    text = "\n".join(lines)
    top = first.site
    while model.parent(top) is not None and model.parent(top) is not model.module:
        top = model.parent(top)
    if _is_main_guard(top) and isinstance(top.body, cst.IndentedBlock) and top.body.body:
        return NodeFix("Seed torch", (NodeEdit("insert_before", top.body.body[0], text),), UNSAFE)
    anchor = first_import_block_end(model)
    if anchor is None:
        return None
    # every statement between the imports and the training must come after the seeding: it does.
    return NodeFix("Seed torch", (NodeEdit("insert_after", anchor, text),), UNSAFE)
