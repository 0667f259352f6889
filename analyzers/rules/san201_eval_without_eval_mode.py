from __future__ import annotations

from ..context import RuleContext
from ..flow import EVAL, FORWARD, TRAIN
from ..rule import Invalid, Rule, Valid
from ._eval_regions import eval_candidates, eval_changes_nothing, train_in_eval_branches, unswitched_framework_steps
from ._eval_mode import borrowed_mode, check_function, check_loop, train_in_eval_branch, unswitched_step
from ._inference import unswitched_helpers


class EvalWithoutEvalMode(Rule):
    """Validation / test / inference code that runs the model without switching it to `eval()`: a
    function named like `evaluate` / `validate` / `test` / `predict` (not a module's own method), or a
    loop over a validation / test loader, whose forward passes are not preceded by `model.eval()` (or
    `model.train(False)`) — in the code itself, in a helper it calls, or before its call sites; and an
    inference helper (`predict_sentiment()`, `translate_sentence()`: it only runs one model forward) that
    never calls `model.eval()` and gets eval mode at every call site only because another function run
    before it (`evaluate()`) left the model in eval mode; the branch of an `if is_train:` / `if phase ==
    "train":` that is not training but switches the same modules to `train()` as the training branch does; and
    a configuration framework's `step()` (labml's, which the framework calls for training and validation
    batches alike) that never sets the model's mode."""

    code = "SAN201"
    name = "eval-without-eval-mode"
    message = "the model is evaluated without model.eval(): dropout and batch-norm stay in training mode"
    why = """
        In training mode dropout still drops units and batch-norm normalises with the statistics of the
        current batch (and updates its running averages with validation data). Validation numbers come
        out noisy and pessimistic, depend on the batch size, and the model's statistics drift.

        An inference helper that borrows its eval mode from `evaluate()` works only while `evaluate()`
        happens to be the last thing that ran: one training step in between (another epoch, a notebook
        cell run again or out of order, the helper reused in another script) and its predictions come
        from a model with dropout active.
    """
    example = """
        def evaluate(model, loader):               # no model.eval()
            with torch.no_grad():
                for x, y in loader:
                    correct += (model(x).argmax(1) == y).sum().item()

        def validate(model, loader):
            model.eval()                           # never switched back
            return [loss_fn(model(x), y).item() for x, y in loader]

        def predict_sentiment(sentence):           # eval mode only if validate() ran last
            return torch.sigmoid(model(encode(sentence))).item()

        for epoch in range(5):
            train(model, train_loader)             # model.train()
            validate(model, val_loader)
        predict_sentiment("This film is great")
    """
    fix_doc = """
        Call `model.eval()` before evaluating, and `model.train()` before training again; an inference
        helper calls `model.eval()` itself. The quick fix inserts `model.eval()` at the top of the function
        or before the loop (offered only where training already switches back with `model.train()`).
    """
    known_problems = """
        Evaluation code is recognised by names (`evaluate`, `validate`, `test`, `predict`, validation loaders);
        differently named evaluation code is not seen. A function nothing in its module calls is left to its
        callers, except one handed to a web UI (`gr.Interface(fn=predict)`, `gr.ChatInterface(predict)`), which
        calls it with the model as the module left it. A model whose class is defined in the same file or in a
        module of the project it imports, and is built only from layers that ignore the mode (no dropout, no
        batch-norm, no `self.training`), is left alone, also when moved with `model = model.to(device)` or passed
        in as a parameter by callers in the same file; so is a model bound only to a Hugging Face
        `from_pretrained(...)` (transformers, diffusers, or peft with its adapter loaded for inference, which
        all return the model in eval mode) in a file that calls no `train()` / `fit()` at all (peft older than
        0.3 left a new adapter in training mode: that is not seen). A model built elsewhere (a loader helper,
        another package, submodules handed to its constructor) is assumed to need eval().

        An inference helper that switches no mode is reported only when every call of it is in the same
        file, none feeds a loss that is backpropagated, and at each of them the last mode switch of that
        model since its last `train()` is an `eval()` inside a function that also runs the model itself
        (`evaluate()`); a `model.eval()` of the caller's own code (or a `with` context) before the call, a
        helper whose job is switching the mode (`freeze(model)`), or one call in training mode keeps it
        quiet. Only plain functions are judged that way (not methods), and only call sites in the scope
        that calls the helper directly: a mode set by the caller's caller is not seen.

        A phase test is recognised by its name (`is_train`, `args.train`, `mode == "train"`; a module's own
        `x.training` flag is not a phase); its branches are judged only when they hold nothing but statements
        (no nested control flow) and the non-training one calls `train()` on exactly the modules the training
        one does.

        A framework's `step()` is judged only where it tells the phases apart (`self.mode.is_train`), runs one
        model of its class, and nothing in the class switches any mode, and only in a class whose model the
        experiments deriving from it build (no `@option(Cls.model)` in its module): an experiment that builds
        its model next to its own `step()` may have configured it without dropout, which the rule cannot read.
    """
    fix_safety = """
        Unsafe: `model.eval()` changes dropout and batch-norm for everything that runs after it, training
        included when nothing switches back. The fix is offered only where training already calls
        `model.train()`, and is still left to `--unsafe-fixes`. In a framework's `step()` the fix sets the mode
        from the phase (`self.model.train(self.mode.is_train)`) at the top of the step: unsafe too, since code
        that relied on the training mode in validation changes.
    """
    VALID = [
        # the experiment builds its model here (@option), maybe without dropout: judged where it is built
        Valid("""
            from labml.configs import option
            from labml_helpers.train_valid import TrainValidConfigs

            class Configs(TrainValidConfigs):
                def step(self, batch, batch_idx):
                    loss = self.loss_func(self.model(batch[0]), batch[1])
                    if self.mode.is_train:
                        loss.backward()

            @option(Configs.model)
            def _model(c: Configs):
                return Transformer(dropout=c.dropout).to(c.device)
        """),
        # from_pretrained returns the model in eval mode, and nothing here trains it
        Valid("""
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained("gpt2")

            def evaluate(prompt_ids):
                return model.generate(input_ids=prompt_ids, max_new_tokens=20)

            print(evaluate(ids))
        """),
        # the phase test switches to eval in its other branch
        Valid("""
            def prepare_for_iteration(self):
                if MODE_STATE.is_train:
                    self.encoder.train()
                else:
                    self.encoder.eval()
        """),
        # restoring training mode when a module is not in it: its own flag, not a phase
        Valid("""
            def ensure_training(model):
                if not model.training:
                    model.train()
                else:
                    model.train()
        """),
        Valid("""
            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    for x, y in loader:
                        out = model(x)
        """),
        # the caller switches the mode
        Valid("""
            def evaluate(model, loader):
                with torch.no_grad():
                    for x, y in loader:
                        out = model(x)

            model.eval()
            evaluate(model, val_loader)
        """),
        # a helper does it
        Valid("""
            def prepare(m):
                m.eval()

            def test(model, loader):
                prepare(model)
                for x, y in loader:
                    out = model(x)
        """),
        # train(flag)
        Valid("""
            for x, y in val_loader:
                pass
            model.train(False)
            with torch.no_grad():
                for x, y in val_loader:
                    out = model(x)
        """),
        # never called here: the callers (in other modules) decide
        Valid("""
            import torch

            def evaluate(model, loader):
                with torch.no_grad():
                    for x, y in loader:
                        out = model(x)
        """),
        # a module's own predict method
        Valid("""
            import torch.nn as nn
            class Net(nn.Module):
                def predict(self, x):
                    return self.net(x).argmax(1)
        """),
        # a training loop over the training loader
        Valid("""
            for x, y in train_loader:
                out = model(x)
                loss_fn(out, y).backward()
                opt.step()
        """),
        # a bigram model: no dropout, no batch-norm, so eval() would change nothing
        Valid("""
            import torch.nn as nn
            class Bigram(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.table = nn.Embedding(vocab, vocab)
                def forward(self, idx):
                    return self.table(idx)
            model = Bigram(27)
            for x, y in train_loader:
                loss = model(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            for x, y in val_loader:
                print(model(x))
        """),
        # a bag-of-embeddings model moved to the device: eval() would change nothing for predict_sentiment()
        Valid("""
            import torch.nn as nn

            class NBoW(nn.Module):
                def __init__(self, vocab, classes):
                    super().__init__()
                    self.embedding = nn.Embedding(vocab, 64)
                    self.fc = nn.Linear(64, classes)

                def forward(self, ids):
                    return self.fc(self.embedding(ids).mean(dim=1))

            def evaluate(model, loader):
                model.eval()
                return [model(ids) for ids, label in loader]

            model = NBoW(5000, 2)
            model = model.to(device)
            evaluate(model, test_loader)

            def predict_sentiment(ids):
                return model(ids).argmax(-1)

            print(predict_sentiment(sample))
        """),
        # the caller switches the mode itself before the inference helper, whatever evaluate() left behind
        Valid("""
            import torch

            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(loss_fn(model(x), y).item() for x, y in loader)

            def translate(tokens):
                return model(torch.LongTensor(tokens).unsqueeze(1)).argmax(-1)

            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model, val_loader)
            model.eval()
            print(translate([2, 14, 7, 3]))
        """),
        # a helper whose job is the mode: freezing the backbone is what it is called for
        Valid("""
            def freeze(model):
                model.eval()
                for p in model.parameters():
                    p.requires_grad_(False)

            def embed(model, x):
                return model(x)

            freeze(backbone)
            features = embed(backbone, images)
        """),
        # one call of the helper runs in training mode: it is not inference-only code
        Valid("""
            def evaluate(model, loader):
                model.eval()
                return [model(x) for x, y in loader]

            def show_samples(model, x):
                print(model(x).argmax(1))

            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                show_samples(model, batch)
                evaluate(model, val_loader)
            show_samples(model, batch)
        """),
    ]
    INVALID = [
        # labml's framework calls step() for validation batches too; nothing switches the model's mode
        Invalid(
            """
            from labml_helpers.train_valid import TrainValidConfigs

            class MNISTConfigs(TrainValidConfigs):
                def step(self, batch, batch_idx):
                    loss = self.loss_func(self.model(batch[0]), batch[1])
                    if self.mode.is_train:
                        loss.backward()
            """,
            line=4,
            fixed="""
            from labml_helpers.train_valid import TrainValidConfigs

            class MNISTConfigs(TrainValidConfigs):
                def step(self, batch, batch_idx):
                    self.model.train(self.mode.is_train)
                    loss = self.loss_func(self.model(batch[0]), batch[1])
                    if self.mode.is_train:
                        loss.backward()
            """,
        ),
        # fine-tuned after from_pretrained: the generate() helper runs it in training mode; the fix switches the
        # model that generate() belongs to
        Invalid(
            """
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained("gpt2")

            def finetune(loader, opt):
                model.train()
                for batch in loader:
                    model(**batch).loss.backward()
                    opt.step()
                    opt.zero_grad()

            def evaluate(prompt_ids):
                return model.generate(input_ids=prompt_ids, max_new_tokens=20)

            finetune(loader, opt)
            print(evaluate(ids))
            """,
            line=12,
            column=4,
            fixed="""
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained("gpt2")

            def finetune(loader, opt):
                model.train()
                for batch in loader:
                    model(**batch).loss.backward()
                    opt.step()
                    opt.zero_grad()

            def evaluate(prompt_ids):
                model.eval()
                return model.generate(input_ids=prompt_ids, max_new_tokens=20)

            finetune(loader, opt)
            print(evaluate(ids))
            """,
        ),
        # an eval() typed as train() in the validation branch of a phase test
        Invalid(
            """
            def prepare_for_iteration(self):
                if MODE_STATE.is_train:
                    self.encoder.train()
                    self.decoder.train()
                else:
                    self.encoder.train()
                    self.decoder.train()
            """,
            line=6,
            column=8,
            message="where `MODE_STATE.is_train` is false, this branch switches self.encoder, self.decoder to "
                    "training mode as the training branch does: evaluation there runs with dropout and batch-norm in "
                    "training mode (eval() was meant)",
            fixed="""
            def prepare_for_iteration(self):
                if MODE_STATE.is_train:
                    self.encoder.train()
                    self.decoder.train()
                else:
                    self.encoder.eval()
                    self.decoder.eval()
            """,
        ),
        # the model is loaded inside: nobody else can switch its mode
        Invalid(
            """
            import torch

            def predict(path, images):
                model = torch.load(path)
                with torch.no_grad():
                    return model(images).argmax(1)

            print(predict('m.pt', batch))
            """,
            line=3,
        ),
        Invalid(
            """
            import torch

            def evaluate(model, loader):
                correct = 0
                with torch.no_grad():
                    for x, y in loader:
                        correct += (model(x).argmax(1) == y).sum().item()
                return correct

            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model, val_loader)
            """,
            line=3,
            fixed="""
            import torch

            def evaluate(model, loader):
                model.eval()
                correct = 0
                with torch.no_grad():
                    for x, y in loader:
                        correct += (model(x).argmax(1) == y).sum().item()
                return correct

            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model, val_loader)
            """,
        ),
        Invalid(
            """
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                with torch.no_grad():
                    for x, y in val_loader:
                        val_loss += loss_fn(model(x), y).item()
            """,
            line=8,
            fixed="""
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                with torch.no_grad():
                    model.eval()
                    for x, y in val_loader:
                        val_loss += loss_fn(model(x), y).item()
            """,
        ),
        # the same model with dropout needs eval()
        Invalid(
            """
            import torch.nn as nn
            class Bigram(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.table = nn.Embedding(vocab, vocab)
                    self.drop = nn.Dropout(0.1)
                def forward(self, idx):
                    return self.drop(self.table(idx))
            model = Bigram(27)
            for x, y in train_loader:
                loss = model(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            for x, y in val_loader:
                print(model(x))
            """,
            line=15,
        ),
        # an inference helper that gets eval mode only from evaluate(), which ran last
        Invalid(
            """
            import torch

            def train(model, loader):
                model.train()
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()

            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(loss_fn(model(x), y).item() for x, y in loader)

            model = Net(dropout=0.5)
            for epoch in range(5):
                train(model, train_loader)
                evaluate(model, val_loader)

            def predict_class(model, x):
                with torch.no_grad():
                    return model(x).argmax(1)

            print(predict_class(model, sample))
            """,
            line=20,
            column=4,
            message="predict_class() runs model without model.eval(): its eval mode is only what evaluate() left "
                    "behind, so after any training step dropout and batch-norm are in training mode",
            fixed="""
            import torch

            def train(model, loader):
                model.train()
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()

            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(loss_fn(model(x), y).item() for x, y in loader)

            model = Net(dropout=0.5)
            for epoch in range(5):
                train(model, train_loader)
                evaluate(model, val_loader)

            def predict_class(model, x):
                model.eval()
                with torch.no_grad():
                    return model(x).argmax(1)

            print(predict_class(model, sample))
            """,
        ),
        # a head over a pretrained backbone handed to the constructor: its dropout is not seen, so assumed
        Invalid(
            """
            import torch.nn as nn
            from transformers import AutoModel

            class Classifier(nn.Module):
                def __init__(self, backbone, classes):
                    super().__init__()
                    self.backbone = backbone
                    self.fc = nn.Linear(768, classes)

                def forward(self, ids):
                    return self.fc(self.backbone(ids).pooler_output)

            def evaluate(model, loader):
                model.eval()
                return [model(ids) for ids, label in loader]

            model = Classifier(AutoModel.from_pretrained("bert-base-uncased"), 2)
            model = model.to(device)
            evaluate(model, test_loader)

            def predict_sentiment(ids):
                return model(ids).argmax(-1)

            print(predict_sentiment(sample))
            """,
            line=21,
        ),
        # the same with a helper named for what it does and the model a global
        Invalid(
            """
            import torch

            def train_epoch(model, loader):
                model.train()
                for src, trg in loader:
                    opt.zero_grad()
                    criterion(model(src, trg), trg).backward()
                    opt.step()

            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    return sum(criterion(model(src, trg), trg).item() for src, trg in loader)

            model = Seq2Seq(encoder, decoder).to(device)
            for epoch in range(10):
                train_epoch(model, train_loader)
                valid_loss = evaluate(model, valid_loader)

            def translate_sentence(tokens):
                src = torch.LongTensor(tokens).unsqueeze(1)
                return model(src, None).argmax(-1).tolist()

            print(translate_sentence([2, 14, 7, 3]))
            """,
            line=20,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        regions = eval_candidates(program)
        for region in regions:
            if any(e.kind == EVAL or (e.kind == TRAIN and e.flag is not True) for e in region.effects):
                continue
            if not region.holds():
                continue
            forwards = [e for e in region.effects if e.kind == FORWARD]
            targets = {e.target for e in forwards}
            if eval_changes_nothing(program, forwards):
                continue  # built from layers that ignore the mode, or loaded in eval mode and never trained
            if region.function is not None:
                result = check_function(program, flow, region, targets)
                if result is None:
                    yield from self._findings([borrowed_mode(program, flow, region, targets)])
                    continue
            else:
                result = check_loop(program, flow, region, targets)
            if result is not None:
                yield self.finding(result[0], end_node=result[1], fix=result[2])
        yield from self._findings(train_in_eval_branch(program, branch) for branch in train_in_eval_branches(program))
        yield from self._findings(unswitched_step(step) for step in unswitched_framework_steps(program, flow))
        for region in unswitched_helpers(program, flow, regions):
            forwards = [e for e in region.effects if e.kind == FORWARD]
            targets = {e.target for e in forwards}
            if not eval_changes_nothing(program, forwards) and region.holds():
                yield from self._findings([borrowed_mode(program, flow, region, targets)])

    def _findings(self, found):
        """Findings from ``(node, message, fix)`` triples (None: nothing found)."""
        for triple in found:
            if triple is not None:
                yield self.finding(triple[0], message=triple[1], fix=triple[2])
