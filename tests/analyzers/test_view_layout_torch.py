"""SAN302's layout provenance checked against real torch: the operations the rule follows a permuted tensor
through really keep its strides, views through elementwise arithmetic and a method's parameter are reported
exactly when torch's ``view`` raises, and the reshape fix on a method viewed per call site changes nothing on
the call site that passed a contiguous tensor."""

from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from torchsanity.analyzers import analyze_source, fix_source  # noqa: E402
from torchsanity.analyzers.rules import _layout  # noqa: E402
from torchsanity.analyzers.rules.san302_view_after_transpose import ViewAfterTranspose  # noqa: E402


def _permuted() -> torch.Tensor:
    return torch.rand(3, 2, 5, 4).add(0.5).permute(2, 0, 1, 3)


def _torch_function(qualname: str):
    target = torch
    for part in qualname.split(".")[1:]:
        target = getattr(target, part)
    return target


@pytest.mark.parametrize("qualname", sorted(_layout._KEEP_LAYOUT_FUNCTIONS))
def test_functions_followed_keep_the_permuted_strides(qualname):
    x = _permuted()
    out = _torch_function(qualname)(x)
    assert not out.is_contiguous()
    assert out.stride() == x.stride()


@pytest.mark.parametrize("qualname", sorted(_layout._BINARY_FUNCTIONS))
def test_binary_functions_of_alike_permuted_tensors_keep_the_strides(qualname):
    x, y = _permuted(), _permuted()
    assert _torch_function(qualname)(x, y).stride() == x.stride()
    assert _torch_function(qualname)(x, 2.0).stride() == x.stride()


@pytest.mark.parametrize("method", sorted(_layout._KEEP_LAYOUT_METHODS - {"cuda", "to"}))
def test_methods_followed_keep_the_permuted_strides(method):
    x = _permuted()
    assert getattr(x, method)().stride() == x.stride()


def test_to_keeps_the_permuted_strides():
    x = _permuted()
    assert x.to(torch.float64).stride() == x.stride()
    assert x.to("cpu", torch.float16).stride() == x.stride()


@pytest.mark.parametrize("method", sorted(_layout._BINARY_METHODS))
def test_binary_methods_keep_the_permuted_strides(method):
    x, y = _permuted(), _permuted()
    assert getattr(x, method)(y).stride() == x.stride()
    assert getattr(x, method)(2).stride() == x.stride()


# Each source defines f(x), run on a random (3, 2, 5, 4) tensor: the rule reports SAN302 exactly when torch
# raises in view().
CASES = {
    "reparameterized samples": """
        def f(x):
            std = torch.exp(0.5 * x.permute(2, 0, 1, 3))
            eps = torch.randn_like(std)
            z = eps * std + x.permute(2, 0, 1, 3)
            return z.view(-1, 4)
    """,
    "arithmetic with numbers": """
        def f(x):
            y = -x.permute(0, 2, 3, 1) ** 2 / 3
            return y.view(3, -1)
    """,
    "merged dims stay adjacent after arithmetic": """
        def f(x):
            y = x.permute(0, 2, 3, 1) * 2 + 1
            b, c, h, w = x.shape
            return y.view(b, h * w, c)
    """,
    "arithmetic viewed directly": """
        def f(x):
            return (x.transpose(1, 3) * 2).view(3, -1)
    """,
    "elementwise function viewed directly, adjacent dims": """
        def f(x):
            b, c, h, w = x.shape
            return torch.exp(x.permute(0, 2, 3, 1)).view(b, h * w, c)
    """,
    "method return viewed": """
        class Model:
            def scaled(self, t):
                return t * 0.5

            def forward(self, x):
                return self.scaled(x.transpose(0, 1)).view(-1)

        def f(x):
            return Model().forward(x)
    """,
    "first operand contiguous": """
        def f(x):
            y = torch.ones_like(x) * x.transpose(2, 3).transpose(2, 3)
            return y.view(3, -1)
    """,
    "made contiguous in between": """
        def f(x):
            y = (x.transpose(1, 2) * 2).contiguous()
            return y.view(3, -1)
    """,
    "method parameter, permuted at the call": """
        class Model:
            def decode(self, z):
                return z.view(-1, 4)

            def reparameterize(self, mu, log_var):
                return torch.randn_like(log_var) * torch.exp(0.5 * log_var) + mu

            def forward(self, x):
                mu = x.permute(2, 0, 1, 3)
                z = self.reparameterize(mu, mu.clone())
                return self.decode(z)

            def sample(self):
                return self.decode(torch.randn(5, 3, 2, 4))

        def f(x):
            return Model().forward(x)
    """,
    "inherited method, permuted by the subclass": """
        class Decoder:
            def decode(self, z):
                return z.view(-1, 4)

        class Model(Decoder):
            def forward(self, x):
                return self.decode(torch.tanh(x.transpose(0, 2)))

        def f(x):
            return Model().forward(x)
    """,
    "method overridden by the subclass that permutes": """
        class Decoder:
            def decode(self, z):
                return z.view(-1, 4)

            def forward(self, x):
                return self.decode(torch.tanh(x.transpose(0, 2)))

        class Model(Decoder):
            def decode(self, z):
                return z.reshape(-1, 4)

        def f(x):
            return Model().forward(x)
    """,
    "method parameter, made contiguous at the call": """
        class Model:
            def decode(self, z):
                return z.view(-1, 4)

            def forward(self, x):
                mu = x.permute(2, 0, 1, 3)
                return self.decode((mu * 2).contiguous())

        def f(x):
            return Model().forward(x)
    """,
    "helper parameter, adjacent dims merged": """
        def tokens(t, b, c):
            return t.view(b, -1, c)

        def f(x):
            b, c, h, w = x.shape
            return tokens(x.permute(0, 2, 3, 1) + 0.5, b, c)
    """,
    "helper parameter, transposed dims merged": """
        def tokens(t, b):
            return t.view(b, -1)

        def f(x):
            b, c, h, w = x.shape
            return tokens(torch.sigmoid(x.transpose(1, 3)), b)
    """,
}


def _raises(source: str) -> bool:
    namespace: dict = {"torch": torch}
    exec(compile(source, "<case>", "exec"), namespace)
    x = torch.randn(3, 2, 5, 4, generator=torch.Generator().manual_seed(0))
    try:
        namespace["f"](x)
    except RuntimeError as error:
        assert "view" in str(error)
        return True
    return False


@pytest.mark.parametrize("name", list(CASES))
def test_reported_exactly_when_torch_rejects_the_view(name):
    source = "import torch\n" + textwrap.dedent(CASES[name])
    reported = any(f.code == "SAN302" for f in analyze_source(source, "t.py", rules=[ViewAfterTranspose]).findings)
    assert reported == _raises(source)


def test_cases_cover_both_answers():
    answers = {_raises("import torch\n" + textwrap.dedent(source)) for source in CASES.values()}
    assert answers == {True, False}


MIWAE_LIKE = textwrap.dedent("""
    import torch

    class Model:
        def decode(self, z):
            return z.view(-1, 4)

        def forward(self, x):
            mu = x.permute(2, 0, 1, 3)
            return self.decode(torch.randn_like(mu) + mu)

        def sample(self, z):
            return self.decode(z)
""")


def _model(source: str):
    namespace: dict = {}
    exec(compile(source, "<differential>", "exec"), namespace)
    return namespace["Model"]()


@pytest.mark.parametrize("seed", range(3))
def test_reshape_fix_judged_per_call_site_differs_only_where_the_view_failed(seed):
    findings = [f for f in analyze_source(MIWAE_LIKE, "t.py", rules=[ViewAfterTranspose]).findings]
    assert [f.code for f in findings] == ["SAN302"] and findings[0].fix is not None
    fixed, report = fix_source(MIWAE_LIKE, "t.py", rules=[ViewAfterTranspose])
    assert not report.findings
    before, after = _model(MIWAE_LIKE), _model(fixed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 2, 5, 4, generator=generator)
    # forward(): the finding's call site, where view raised; reshape gives what contiguous().view() would
    with pytest.raises(RuntimeError):
        before.forward(x)
    torch.manual_seed(seed)
    got = after.forward(x)
    torch.manual_seed(seed)
    mu = x.permute(2, 0, 1, 3)
    assert torch.equal(got, (torch.randn_like(mu) + mu).contiguous().view(-1, 4))
    # sample(): a contiguous z, where view worked; reshape returns the same view of the same storage
    z = torch.randn(5, 3, 2, 4, generator=generator)
    old, new = before.sample(z), after.sample(z)
    assert torch.equal(old, new) and new.data_ptr() == z.data_ptr()
