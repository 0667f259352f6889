"""SAN302's legal / illegal view decisions checked against real torch: each snippet runs on a random tensor,
and the rule reports it exactly when torch's ``view`` raises (a stride it cannot express)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torchsanity.analyzers import analyze_source  # noqa: E402

# (source of f(x), shape of x)
CASES = [
    # -1 stands for h * w: h and w stay adjacent and in order after the permute
    ("def f(x):\n    b, c, h, w = x.shape\n    return x.permute(0, 2, 3, 1).view(b, -1, c)\n", (2, 3, 4, 5)),
    ("def f(x):\n    b, c, h, w = x.shape\n    return x.permute(0, 2, 3, 1).view(b, h * w, -1)\n", (2, 3, 4, 5)),
    # the transposed dims merged: illegal
    ("def f(x):\n    b, n, d = x.shape\n    return x.transpose(1, 2).view(b, -1)\n", (2, 3, 4)),
    ("def f(x):\n    b, c, h, w = x.shape\n    return x.permute(0, 2, 3, 1).view(-1, c)\n", (2, 3, 4, 5)),
    ("def f(x):\n    b, c, h, w = x.shape\n    y = x.transpose(1, 2)\n    return y.view(b, h, -1)\n", (2, 3, 4, 5)),
    # (K, D).t() viewed as its own shape (D, K), through detach(): legal
    ("def f(queue):\n    K, D = queue.shape\n    return queue.detach().t().view(-1, K)\n", (6, 4)),
    ("def f(queue):\n    K = queue.shape[0]\n    return queue.T.view(-1, K)\n", (6, 4)),
    # a name rebound on the same line: the contiguous copy is viewed
    ("def f(x):\n    b, n, d = x.shape\n    x = x.transpose(1, 2); x = x.contiguous()\n    return x.view(b, -1)\n", (2, 3, 4)),
]


def _raises(source: str, shape: tuple[int, ...]) -> bool:
    namespace: dict = {"torch": torch}
    exec(compile(source, "<case>", "exec"), namespace)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    try:
        namespace["f"](x)
    except RuntimeError as error:
        assert "view" in str(error)
        return True
    return False


@pytest.mark.parametrize("source, shape", CASES, ids=[str(i) for i in range(len(CASES))])
def test_san302_reports_exactly_the_views_torch_rejects(source, shape):
    reported = any(f.code == "SAN302" for f in analyze_source("import torch\n" + source, "t.py").findings)
    assert reported == _raises(source, shape)
