"""Each check on small in-process cases the test scripts do not cover (real torch, built via the entry path)."""

from __future__ import annotations

import torch
from torch import nn

from torchsanity.probes.checks import CHECKS
from torchsanity.probes.context import ProbeContext, loss_info, scalar
from torchsanity.probes.entry import EntryStep
from torchsanity.probes.workbench import Workbench


def run_check(cid, model, batch, loss_fn, lr=1e-2, steps=30, optimizer=None):
    step = EntryStep(model, batch, loss_fn, optimizer or (lambda params: torch.optim.Adam(params, lr=lr)))
    _, loss = step.observe()
    wb = Workbench(step.models, step.optimizer)
    step.choose_sub_batch(wb)
    ctx = ProbeContext(step, wb, loss_info(step.loss_call, scalar(loss)), steps=steps, sites={})
    try:
        return CHECKS[cid](ctx)
    finally:
        wb.restore()  # the checks train the real objects; the harness gives the script its state back


def blobs(n=64, features=8, classes=4):
    torch.manual_seed(0)
    y = torch.arange(n) % classes
    return torch.randn(classes, features)[y] * 2 + torch.randn(n, features), y


def test_dead_relu_layer_fails_gradient_flow():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].bias.fill_(-20.0)  # every unit of the first layer is off for every sample
    res = run_check("gradient-flow", model, blobs(), nn.CrossEntropyLoss())
    assert res.status == "fail" and "dead ReLU" in res.message
    assert res.series["relu_dead_fraction"][0] == 1.0


def test_unused_parameters_warn_and_healthy_gradients_pass():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
            self.spare_head = nn.Linear(32, 2)

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(0)
    res = run_check("gradient-flow", WithSpare(), blobs(), nn.CrossEntropyLoss(), lr=1e-3)
    assert res.status == "warn" and "spare_head.weight" in res.message
    torch.manual_seed(0)
    res = run_check("gradient-flow", nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)), blobs(),
                    nn.CrossEntropyLoss(), lr=1e-3)
    assert res.status == "pass", res.message
    assert 1e-4 < res.measured["median_update_ratio"] < 1e-1


def test_data_stats_flags_nan_raw_pixels_and_imbalance():
    x, y = blobs()
    x_nan = x.clone()
    x_nan[3, 2] = float("nan")
    model = nn.Linear(8, 4)
    res = run_check("data-stats", model, (x_nan, y), nn.CrossEntropyLoss())
    assert res.status == "warn" and "NaN" in res.message
    pixels = torch.randint(0, 256, (16, 3, 8, 8)).float()
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 4))
    res = run_check("data-stats", conv, (pixels, torch.arange(16) % 4), nn.CrossEntropyLoss())
    assert res.status == "warn" and "not normalised" in res.message
    skewed = torch.tensor([0] * 60 + [1, 2, 3, 1])
    res = run_check("data-stats", nn.Linear(8, 4), (x, skewed), nn.CrossEntropyLoss())
    assert res.status == "warn" and "imbalanced" in res.message


def test_initial_loss_on_binary_imbalance_and_nll_without_log_softmax():
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    y = (torch.arange(200) % 10 == 0).float().unsqueeze(1)  # 10 % positives
    res = run_check("initial-loss", nn.Linear(8, 1), (x, y), nn.BCEWithLogitsLoss())
    assert res.status == "warn" and "log(p/(1−p))" in res.message
    xb, yb = blobs()
    res = run_check("initial-loss", nn.Linear(8, 4), (xb, yb), nn.NLLLoss())  # raw logits into NLLLoss
    assert res.status == "fail" and "log_softmax" in res.message
    res = run_check("initial-loss", nn.Sequential(nn.Linear(8, 4), nn.LogSoftmax(1)), (xb, yb), nn.NLLLoss())
    assert res.status == "pass", res.message


class TokenModel(nn.Module):
    def __init__(self, mix: bool):
        super().__init__()
        self.mix = mix
        self.emb = nn.Embedding(20, 8)
        self.head = nn.Linear(8, 20)

    def forward(self, idx):
        h = self.emb(idx)
        if self.mix:
            h = h - h.mean(0, keepdim=True)  # a "normalisation" over the batch dimension
        return self.head(h).transpose(1, 2)


def test_batch_independence_with_integer_inputs_uses_the_embedding_output():
    torch.manual_seed(0)
    idx = torch.randint(0, 20, (6, 5))
    target = torch.randint(0, 20, (6, 5))
    res = run_check("batch-independence", TokenModel(mix=True), (idx, target), nn.CrossEntropyLoss())
    assert res.status == "fail", res.message
    res = run_check("batch-independence", TokenModel(mix=False), (idx, target), nn.CrossEntropyLoss())
    assert res.status == "pass", res.message


def test_overfit_passes_on_a_fittable_batch_and_fails_on_random_labels_with_a_tiny_model():
    x, y = blobs()
    res = run_check("overfit-batch", nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)), (x, y),
                    nn.CrossEntropyLoss(), steps=40)
    assert res.status == "pass", res.message
    res = run_check("overfit-batch", nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)), (x, y),
                    nn.CrossEntropyLoss(), lr=1e-9, steps=20)
    assert res.status == "fail" and "plateaus" in res.message


def test_probes_run_at_the_base_learning_rate_not_at_warmup_step_zero():
    x, y = blobs()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 100))  # warmup from lr = 0
    assert opt.param_groups[0]["lr"] == 0.0
    res = run_check("overfit-batch", model, (x, y), nn.CrossEntropyLoss(), steps=40, optimizer=opt)
    assert res.status == "pass", res.message
    assert opt.param_groups[0]["lr"] == 0.0  # the user's optimizer is left alone
    manual = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for g in manual.param_groups:  # nanoGPT's get_lr(0) sets the group's lr by hand
        g["lr"] = 1e-2 / 101
    res = run_check("overfit-batch", model, (x, y), nn.CrossEntropyLoss(), steps=40, optimizer=manual)
    assert res.status == "pass", res.message


class CopiesItsInput(nn.Module):
    """Rebuilds its input as a new tensor (as torch.nested.nested_tensor does): no gradient reaches the input."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return self.net(torch.tensor(x.tolist()))


def test_a_graph_cut_at_the_input_is_named_in_batch_independence():
    res = run_check("batch-independence", CopiesItsInput(), blobs(), nn.CrossEntropyLoss())
    assert res.status == "warn", res.message
    assert res.measured == {"max_grad_other_samples": 0.0, "grad_own_sample": 0.0}
    assert "the graph from the input is cut" in res.message and "gradient-flow" in res.message
