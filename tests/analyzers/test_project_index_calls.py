"""The project index: module summaries read with CPython's ast, the reverse index of call sites across
files, the gradient mode each caller runs in, and the functions frameworks call."""

from __future__ import annotations

import textwrap
from pathlib import Path

from torchsanity.analyzers import FileReport, Finding, Position, Project, Severity
from torchsanity.analyzers.project_index import callers_disable_grad, entry_point, settle_report
from torchsanity.analyzers.project_summary import FLAG, INHERIT, OFF, ON, summarize

HERE = Path(__file__).parent

EVAL = """\
import torch


def evaluate(model, loader):
    model.eval()
    for x, y in loader:
        out = model(x)
"""


def project_of(tmp_path: Path, files: dict[str, str]) -> Project:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return Project(tmp_path)


def ask(project: Project, name: str, function: str) -> bool | None:
    return callers_disable_grad(project, str(project.root / name), function)


# ---- summaries -------------------------------------------------------------------------------------


def test_summary_records_each_call_with_its_gradient_context():
    summary = summarize(textwrap.dedent("""\
        import torch as th
        from torch import no_grad

        run()
        with th.no_grad():
            first()
        with no_grad(), open("f"):
            second()
        with th.set_grad_enabled(False):
            third()
        with th.set_grad_enabled(training):
            fourth()
        with th.inference_mode():
            with th.enable_grad():
                fifth()

        @th.inference_mode()
        def decorated():
            sixth()

        def plain():
            seventh()
            handler = lambda: eighth()
    """))
    contexts = {callee: (context, scope) for callee, _line, context, scope in summary["calls"]}
    assert contexts["run"] == (ON, None)
    assert contexts["first"] == contexts["second"] == contexts["third"] == (OFF, None)
    assert contexts["fourth"] == (FLAG, None)
    assert contexts["fifth"] == (ON, None)
    assert contexts["sixth"] == (OFF, "decorated")
    assert contexts["seventh"] == (INHERIT, "plain")
    assert contexts["eighth"][0] == FLAG
    assert summary["functions"]["decorated"][3] == "nograd"
    assert summary["imports"]["no_grad"] == "torch.no_grad"


def test_an_imperative_switch_makes_its_scope_unknown():
    summary = summarize("import torch\n\ndef main():\n    torch.set_grad_enabled(False)\n    evaluate()\n")
    assert [c[2] for c in summary["calls"] if c[0] == "evaluate"] == [FLAG]


def test_code_cpython_cannot_parse_has_no_summary():
    assert summarize("print 'python 2'\n") is None


# ---- callers across files --------------------------------------------------------------------------


def test_a_caller_in_another_module_under_no_grad(tmp_path):
    project = project_of(tmp_path, {
        "engine.py": EVAL,
        "main.py": "import torch\nfrom engine import evaluate\n\nwith torch.no_grad():\n    evaluate(m, l)\n",
    })
    assert ask(project, "engine.py", "evaluate") is True
    callers = project.index.callers(tmp_path / "engine.py", "evaluate")
    assert [(p.name, context) for p, context, _ in callers] == [("main.py", OFF)]


def test_one_caller_with_gradients_is_enough(tmp_path):
    project = project_of(tmp_path, {
        "engine.py": EVAL,
        "main.py": "import torch\nimport engine\n\nwith torch.no_grad():\n    engine.evaluate(m, l)\nengine.evaluate(m, l)\n",
    })
    assert ask(project, "engine.py", "evaluate") is False


def test_nothing_calls_it(tmp_path):
    project = project_of(tmp_path, {"metrics.py": EVAL, "train.py": "import torch\nimport metrics\n"})
    assert ask(project, "metrics.py", "evaluate") is False


def test_callers_of_callers_decide(tmp_path):
    project = project_of(tmp_path, {
        "pkg/__init__.py": "from .engine import evaluate\n",
        "pkg/engine.py": EVAL,
        "pkg/loop.py": """\
            import torch
            from . import evaluate as ev

            def report(model, loader):
                return ev(model, loader)

            @torch.no_grad()
            def validate(model, loader):
                return report(model, loader)
        """,
        "main.py": """\
            from pkg.loop import validate

            def main():
                validate(model, loader)

            if __name__ == "__main__":
                main()
        """,
    })
    assert ask(project, "pkg/engine.py", "evaluate") is True
    assert ask(project, "pkg/loop.py", "report") is True
    assert ask(project, "pkg/loop.py", "validate") is True  # decorated
    assert ask(project, "main.py", "main") is False  # module level runs with gradients


def test_passed_as_a_value_or_behind_an_unknown_decorator_cannot_be_told(tmp_path):
    project = project_of(tmp_path, {
        "engine.py": EVAL + "\n\n@register\ndef test(model, loader):\n    out = model(loader)\n",
        "main.py": "from engine import evaluate\n\nhooks = {'eval': evaluate}\n",
    })
    assert ask(project, "engine.py", "evaluate") is None
    assert ask(project, "engine.py", "test") is None


def test_recursion_alone_is_no_caller(tmp_path):
    project = project_of(tmp_path, {"tree.py": "def evaluate(node):\n    for c in node:\n        evaluate(c)\n"})
    assert ask(project, "tree.py", "evaluate") is False


def test_without_a_project_nothing_is_known():
    assert callers_disable_grad(None, "engine.py", "evaluate") is None


def test_the_sample_project_through_the_index():
    folder = HERE / "projects" / "eval_called_under_no_grad"
    project = Project(folder)
    assert ask(project, "engine.py", "evaluate") is True
    assert ask(project, "engine.py", "Validator.validate") is True  # `validator.validate(...)`, all under no_grad
    library = HERE / "projects_callers" / "library_eval"
    assert ask(Project(library), "metrics.py", "evaluate") is False


# ---- methods and classes ---------------------------------------------------------------------------


def test_methods_through_self_and_a_base_class_in_another_module(tmp_path):
    project = project_of(tmp_path, {
        "base.py": "class Base:\n    def evaluate(self, model):\n        return model(1)\n",
        "runner.py": """\
            import torch
            from base import Base

            class Runner(Base):
                def run(self, model):
                    with torch.no_grad():
                        return self.evaluate(model)
        """,
    })
    assert ask(project, "base.py", "Base.evaluate") is True


def test_a_method_called_on_an_unknown_receiver_with_gradients_cannot_be_told(tmp_path):
    project = project_of(tmp_path, {
        "engine.py": "class Trainer:\n    def evaluate(self, model):\n        return model(1)\n",
        "main.py": "from engine import Trainer\n\ntrainer = Trainer()\ntrainer.evaluate(model)\n",
    })
    assert ask(project, "engine.py", "Trainer.evaluate") is None


def test_an_uncalled_method_of_a_framework_class_cannot_be_told(tmp_path):
    project = project_of(tmp_path, {
        "engine.py": "import torch.nn as nn\nfrom somewhere import Base\n\n"
                     "class A(Base):\n    def evaluate(self):\n        pass\n\n"
                     "class B(nn.Module):\n    def evaluate(self):\n        pass\n",
    })
    assert ask(project, "engine.py", "A.evaluate") is None
    assert ask(project, "engine.py", "B.evaluate") is False


# ---- framework entry points ------------------------------------------------------------------------


def test_lightning_hooks_through_a_base_class_in_another_module(tmp_path):
    project = project_of(tmp_path, {
        "base.py": "import pytorch_lightning as pl\n\nclass Base(pl.LightningModule):\n    pass\n",
        "model.py": """\
            from base import Base

            class Net(Base):
                def training_step(self, batch, i):
                    return self.shared(batch)

                def validation_step(self, batch, i):
                    return self.shared(batch)

                def shared(self, batch):
                    return self(batch)

                def train_dataloader(self):
                    return loader
        """,
    })
    assert ask(project, "model.py", "Net.validation_step") is True
    assert ask(project, "model.py", "Net.training_step") is False
    assert ask(project, "model.py", "Net.shared") is False  # one of its callers has gradients on
    point = entry_point(project, str(tmp_path / "model.py"), "Net.train_dataloader")
    assert (point.framework, point.kind, point.grad_disabled) == ("lightning", "train_dataloader", None)


def test_hf_trainer_skorch_and_ignite(tmp_path):
    project = project_of(tmp_path, {
        "hf.py": "from transformers import Trainer\n\nclass MyTrainer(Trainer):\n"
                 "    def compute_loss(self, model, inputs):\n        return model(**inputs).loss\n",
        "sk.py": "import skorch\n\nclass Net(skorch.NeuralNetClassifier):\n    def train_step(self, batch):\n        pass\n",
        "ig.py": """\
            from ignite.engine import Engine, Events

            def eval_step(engine, batch):
                return model(batch)

            evaluator = Engine(eval_step)
            trainer = Engine(train_step)

            @trainer.on(Events.EPOCH_COMPLETED)
            def log_validation(engine):
                evaluator.run(loader)
        """,
    })
    assert entry_point(project, str(tmp_path / "hf.py"), "MyTrainer.compute_loss").framework == "transformers"
    assert ask(project, "hf.py", "MyTrainer.compute_loss") is False
    assert entry_point(project, str(tmp_path / "sk.py"), "Net.train_step").framework == "skorch"
    point = entry_point(project, str(tmp_path / "ig.py"), "eval_step")
    assert (point.framework, point.kind, point.grad_disabled) == ("ignite", "process-function", False)
    assert entry_point(project, str(tmp_path / "ig.py"), "log_validation").kind == "handler"


# ---- the editor's buffers, dependencies, deferred questions -----------------------------------------


def test_an_open_buffer_replaces_its_file_and_the_answer_follows(tmp_path):
    caller = "import torch\nfrom engine import evaluate\n\nwith torch.no_grad():\n    evaluate(m, l)\n"
    project = project_of(tmp_path, {"engine.py": EVAL, "main.py": caller})
    assert ask(project, "engine.py", "evaluate") is True
    project.set_overlay({str(tmp_path / "main.py"): "from engine import evaluate\n\nevaluate(m, l)\n"})
    assert ask(project, "engine.py", "evaluate") is False
    assert (tmp_path / "main.py").resolve() in project.dependencies(tmp_path / "engine.py")
    project.set_overlay({})
    assert ask(project, "engine.py", "evaluate") is True  # back to the disk


def test_a_deferred_question_is_settled_with_the_whole_project(tmp_path):
    project = project_of(tmp_path, {
        "engine.py": EVAL + "\n\ndef test(model, loader):\n    out = model(loader)\n",
        "main.py": "import torch\nfrom engine import evaluate\n\nwith torch.no_grad():\n    evaluate(m, l)\n",
    })
    project.defer = True
    path = str(tmp_path / "engine.py")
    assert callers_disable_grad(project, path, "evaluate") is False  # for now
    assert callers_disable_grad(project, path, "test") is False
    questions = project.questions.pop((tmp_path / "engine.py").resolve())
    assert questions == {("evaluate", "SAN202"), ("test", "SAN202")}

    def finding(code: str, line: int) -> Finding:
        return Finding(code, "x", Severity.WARNING, "m", path, Position(line, 4), Position(line, 12))

    report = FileReport(path, findings=[finding("SAN202", 4), finding("SAN202", 7), finding("SAN201", 5),
                                        finding("SAN202", 11)])
    settled = settle_report(Project(tmp_path).index, path, report, questions)
    # evaluate (lines 4-7) runs under no_grad: its SAN202 findings go; test() has no caller: it stays
    assert [(f.code, f.start.line) for f in settled.findings] == [("SAN201", 5), ("SAN202", 11)]


def test_a_tree_too_large_to_list_answers_nothing(tmp_path, monkeypatch):
    from torchsanity.analyzers import project_index

    project = project_of(tmp_path, {"a/metrics.py": EVAL, "b/x.py": "", "c/y.py": ""})
    monkeypatch.setattr(project_index, "_MAX_FOLDERS", 1)
    assert ask(project, "a/metrics.py", "evaluate") is None


def test_calls_from_tests_do_not_count(tmp_path):
    project = project_of(tmp_path, {
        "engine.py": EVAL,
        "tests/test_engine.py": "from engine import evaluate\n\ndef test_it():\n    evaluate(m, l)\n",
        "test_smoke.py": "import torch\nfrom engine import evaluate\n\nwith torch.no_grad():\n    evaluate(m, l)\n",
    })
    assert project.index.callers(tmp_path / "engine.py", "evaluate") == []
    assert ask(project, "engine.py", "evaluate") is False  # judged on its own
