"""In-process tests of the capture and replay machinery (no subprocess): what the checks build on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchsanity.probes.capture import Recorder, StopProbe
from torchsanity.probes.replay import CannotDrive, TapeStep
from torchsanity.probes.workbench import Workbench


def capture(train_step):
    """Run ``train_step`` under the hooks until its backward(); the captured step."""
    box = {}

    def on_backward(cap):
        box["cap"] = cap
        raise StopProbe()

    rec = Recorder(on_backward)
    rec.install()
    try:
        train_step()
        rec.finish()  # no optimizer step followed the backward(): the harness probes it at the end, as here
    except StopProbe:
        pass
    finally:
        rec.uninstall()
    return box["cap"]


def test_stop_signal_is_not_an_exception():
    assert issubclass(StopProbe, BaseException) and not issubclass(StopProbe, Exception)


def test_replay_reproduces_the_loss_and_strips_accumulation_scaling():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    torch.optim.SGD(model.parameters(), lr=0.1)  # built before the hooks: the replay finds no optimizer
    x, y = (torch.rand(16, 6) * 255).to(torch.uint8), torch.arange(16) % 3  # raw pixels

    def step():
        h = x.float()
        h /= 255.0  # in-place normalisation on a tensor made in the step
        loss = nn.functional.cross_entropy(model(h), y) / 4  # gradient accumulation
        loss.backward()

    cap = capture(step)
    step_ = TapeStep(cap)
    assert step_.loss_call.kind == "cross-entropy"
    expected = nn.functional.cross_entropy(model(x.float() / 255.0), y)
    assert torch.allclose(step_.loss_tensor, expected)
    wb = Workbench(step_.models, step_.optimizer)
    replayed = step_.run(wb).loss
    assert torch.allclose(replayed, expected)
    assert wb.models[0] is model  # the user's own model (restored after the checks), not a copy
    step_.choose_sub_batch(wb)
    assert step_.sub_batch == 8
    assert torch.allclose(step_.run(wb, sub=True).loss,
                          nn.functional.cross_entropy(model(x[:8].float() / 255.0), y[:8]))


def test_loss_inside_the_model_with_targets_as_model_input():
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 8)
            self.head = nn.Linear(8, 11)

        def forward(self, idx, targets):
            logits = self.head(self.emb(idx))
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits.view(-1, 11), targets.view(-1))}

    model = Net()
    torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.randint(0, 11, (200,))

    def step():
        ix = torch.randint(0, 190, (6,))
        xb = torch.stack([data[i:i + 5] for i in ix])
        yb = torch.stack([data[i + 1:i + 6] for i in ix])
        model(xb, yb)["loss"].backward()

    cap = capture(step)
    step_ = TapeStep(cap, sub_batch=4)
    assert step_.loss_call.kind == "cross-entropy" and step_.loss_call.depth > 0
    assert [t.shape for t in step_.input_tensors()] == [torch.Size([6, 5])]  # targets are not zeroed inputs
    wb = Workbench(step_.models, step_.optimizer)
    assert torch.allclose(step_.run(wb).loss, step_.loss_tensor)
    zeroed = step_.run(wb, zero_inputs=True).loss
    assert not torch.allclose(zeroed, step_.loss_tensor)
    step_.choose_sub_batch(wb)
    assert step_.sub_batch == 4


def test_two_models_cannot_be_driven():
    g, d = nn.Linear(4, 4), nn.Linear(4, 1)

    def step():
        d(g(torch.randn(5, 4))).mean().backward()

    with pytest.raises(CannotDrive, match="2 separately called models"):
        TapeStep(capture(step))


def test_workbench_reset_restores_weights_optimizer_and_rng():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    wb = Workbench([model], opt)
    before = [p.detach().clone() for p in wb.models[0].parameters()]
    r1 = torch.rand(3)
    wb.models[0](torch.randn(4, 3)).sum().backward()
    wb.optimizer.step()
    assert not torch.equal(before[0], wb.models[0].weight)
    wb.reset()
    assert all(torch.equal(a, b) for a, b in zip(before, wb.models[0].parameters()))
    assert wb.optimizer.state_dict()["state"] == {}
    assert torch.equal(torch.rand(3), r1)
    assert wb.models[0] is model  # the checks train the user's own model ...
    assert wb.restore()["identical"] is True  # ... and give it back exactly


def test_submodules_called_separately_are_driven_through_their_owner():
    torch.manual_seed(0)

    class AutoEncoder(nn.Module):  # a LightningModule-like training_step calling its parts one by one
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(6, 3), nn.Tanh())
            self.decoder = nn.Linear(3, 6)

        def training_step(self, x):
            return nn.functional.mse_loss(self.decoder(self.encoder(x)), x)

    x = torch.randn(10, 6)
    built = {}

    def script():  # the model is built under the hooks, as in a probed script
        model = built["model"] = AutoEncoder()
        torch.optim.Adam(model.parameters(), lr=1e-3)
        model.training_step(x).backward()

    step = TapeStep(capture(script))
    model = built["model"]
    assert step.models == [model]
    wb = Workbench(step.models, step.optimizer)
    assert torch.allclose(step.run(wb).loss, model.training_step(x))
    # zeroing the inputs zeroes the batch fed to the encoder, not the code passed to the decoder, nor the target
    zeroed = step.run(wb, zero_inputs=True).loss
    with torch.no_grad():
        expected = nn.functional.mse_loss(model.decoder(model.encoder(torch.zeros(10, 6))), x)
    assert torch.allclose(zeroed, expected)


def test_evaluation_under_no_grad_is_not_recorded():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.arange(8) % 3

    def script():
        with torch.no_grad():  # an evaluation pass before training, as nanoGPT's estimate_loss at iter 0
            for _ in range(50):
                nn.functional.cross_entropy(model(torch.randn(8, 4)), y)
        nn.functional.cross_entropy(model(x), y).backward()

    cap = capture(script)
    assert sum(e.kind == "module" for e in cap.tape) == 1 and len(cap.loss_calls) == 1


def test_models_that_cannot_be_deep_copied_are_probed_in_place_and_restored():
    import threading

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    model.lock = threading.Lock()  # deepcopy fails on this; nothing is copied anyway
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = model.weight.detach().clone()
    wb = Workbench([model], opt)
    assert wb.models == [model] and wb.optimizer is opt
    wb.models[0](torch.randn(5, 4)).sum().backward()
    wb.optimizer.step()
    assert not torch.equal(model.weight, before)
    wb.reset()
    assert torch.equal(model.weight, before) and model.weight.grad is None
