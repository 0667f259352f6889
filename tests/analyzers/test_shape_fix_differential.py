"""Shape fixes checked with real torch: the code before and after SAN301's view → permute and SAN302's
view → reshape fixes runs on random tensors, and the fixed code differs from the original only where the
finding said it was wrong."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torchsanity.analyzers import analyze_source, fix_source  # noqa: E402


def _function(source: str):
    namespace: dict = {"torch": torch}
    exec(compile(source, "<differential>", "exec"), namespace)
    return namespace["f"]


def _fixed(source: str, code: str) -> str:
    findings = [f for f in analyze_source(source, "t.py").findings if f.code == code]
    assert findings and all(f.fix is not None for f in findings), f"no {code} fix to check"
    fixed, report = fix_source(source, "t.py", unsafe=True)
    assert not [f for f in report.findings if f.code == code]
    return fixed


NCHW_TO_NHWC = "import torch\ndef f(y):\n    n, c, h, w = y.shape\n    return y.view(n, h, w, c)\n"
NCHW_TO_TOKENS = "import torch\ndef f(y):\n    b, c, h, w = y.shape\n    return y.view(b, h * w, c)\n"


@pytest.mark.parametrize("seed", range(5))
def test_san301_permute_gives_the_transposed_layout(seed):
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(2, 3, 4, 5, generator=generator)
    before, after = _function(NCHW_TO_NHWC), _function(_fixed(NCHW_TO_NHWC, "SAN301"))
    old, new = before(y), after(y)
    assert old.shape == new.shape == (2, 4, 5, 3)  # the shape the author asked for is kept
    # the fixed code moves each value to where NHWC puts it: new[n, i, j, k] == y[n, k, i, j]
    for n in range(2):
        for k in range(3):
            assert torch.equal(new[n, :, :, k], y[n, k])
    # the original only reinterpreted memory: same values, scrambled (the finding's point)
    assert torch.equal(old.flatten().sort().values, new.flatten().sort().values)
    assert not torch.equal(old, new)


@pytest.mark.parametrize("seed", range(3))
def test_san301_merged_tokens_keep_channels_together(seed):
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(2, 3, 4, 5, generator=generator)
    after = _function(_fixed(NCHW_TO_TOKENS, "SAN301"))
    tokens = after(y)
    assert tokens.shape == (2, 20, 3)
    for i in range(4):
        for j in range(5):
            assert torch.equal(tokens[:, i * 5 + j, :], y[:, :, i, j])


def test_a_product_of_sizes_is_a_merge_not_a_reorder():
    source = "import torch\ndef f(y):\n    b, c, h, w = y.shape\n    return y.view(b, c, w * h)\n"
    assert [f.code for f in analyze_source(source, "t.py").findings] == []
    y = torch.randn(2, 3, 4, 5)
    assert torch.equal(_function(source)(y), y.reshape(2, 3, 20))  # what the author meant, as written


ATTENTION = (
    "import torch\n"
    "def f(att):\n"
    "    B, nh, T, hs = att.shape\n"
    "    return att.transpose(1, 2).view(B, T, nh * hs)\n"
)


@pytest.mark.parametrize("seed", range(5))
def test_san302_reshape_equals_contiguous_view(seed):
    generator = torch.Generator().manual_seed(seed)
    att = torch.randn(2, 3, 4, 5, generator=generator)
    before, after = _function(ATTENTION), _function(_fixed(ATTENTION, "SAN302"))
    with pytest.raises(RuntimeError):
        before(att)  # the bug: view on a transposed tensor
    expected = att.transpose(1, 2).contiguous().view(2, 4, 15)
    assert torch.equal(after(att), expected)


def test_san302_reshape_is_the_same_where_view_worked():
    """With one head the transpose keeps memory order: view works, and reshape gives the same values
    as a view of the same storage (writes through it still reach the original)."""
    att = torch.randn(2, 1, 4, 5)
    before, after = _function(ATTENTION), _function(_fixed(ATTENTION, "SAN302"))
    old, new = before(att), after(att)
    assert torch.equal(old, new)
    assert new.data_ptr() == att.data_ptr()
