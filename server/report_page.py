"""The one HTML renderer of torchsanity's reports: a page (body, chart specs, one small script) in a shell that
says where it is shown — a self-contained file for the CLI (Chart.js inlined) or the VS Code webview (Chart.js
from the extension, a strict Content-Security-Policy with a nonce, nothing remote). The probe report
(``probe_report.render_html``) and any other report build a body and declarative chart specs and call
:func:`render_page`; ``assets/report.js`` draws the specs and ``assets/report.css`` styles both front ends."""

from __future__ import annotations

import html
import json
import math
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "assets"
FRONTENDS = ("cli", "vscode")


@dataclass(frozen=True)
class Shell:
    """Where a page is shown. ``cli``: one self-contained file. ``vscode``: a webview; ``csp_source`` is the
    webview's ``cspSource`` and ``chart_uri`` its URI of the extension's Chart.js (``out/webview/``)."""

    frontend: str = "cli"
    nonce: str = ""
    csp_source: str = ""
    chart_uri: str = ""

    def __post_init__(self) -> None:
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {', '.join(FRONTENDS)}")
        if self.frontend == "vscode" and not (self.nonce and self.csp_source and self.chart_uri):
            raise ValueError("a webview page needs a nonce, the webview's cspSource and the Chart.js URI")
        if self.nonce and not re.fullmatch(r"[A-Za-z0-9+/=_-]{8,}", self.nonce):
            raise ValueError("the nonce must be at least 8 base64 characters")
        # source expressions ('self', https://*.vscode-cdn.net, …): nothing that ends the attribute or a directive
        if self.csp_source and not re.fullmatch(r"[^\s\"<>;,&]+( [^\s\"<>;,&]+)*", self.csp_source):
            raise ValueError("the webview's cspSource must be CSP source expressions")


def standalone() -> Shell:
    """The shell of a report file written by the CLI (a fresh nonce for its inline scripts)."""
    return Shell("cli", nonce=secrets.token_urlsafe(18))


def webview(nonce: str, csp_source: str, chart_uri: str) -> Shell:
    return Shell("vscode", nonce=nonce, csp_source=csp_source, chart_uri=chart_uri)


def content_security_policy(shell: Shell) -> str:
    """Nothing is fetched but the webview's own resources; scripts and styles need the page's nonce."""
    source = f"{shell.csp_source} " if shell.csp_source else ""
    return "; ".join([
        "default-src 'none'",
        f"img-src {source}data:",
        f"style-src {source}'nonce-{shell.nonce}'",
        f"font-src {shell.csp_source or 'data:'}",
        f"script-src 'nonce-{shell.nonce}'",
        "connect-src 'none'",
        "form-action 'none'",
        "frame-src 'none'",
        "base-uri 'none'",
    ])


def json_for_script(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>``, no HTML comments)."""
    return (json.dumps(value, default=str, allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def finite(value: Any) -> Any:
    """Numbers JSON can carry: NaN and infinities become null (a gap in a chart), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def render_page(title: str, body: str, charts: list[dict], shell: Shell) -> str:
    """The whole page: ``body`` (HTML, already escaped) with a ``<canvas data-chart="i">`` per chart spec,
    the specs as JSON, the shared stylesheet and script, Chart.js as the shell says."""
    n = html.escape(shell.nonce, quote=True)
    css = (ASSETS / "report.css").read_text(encoding="utf-8")
    script = (ASSETS / "report.js").read_text(encoding="utf-8")
    if shell.frontend == "vscode":
        chart = f'<script nonce="{n}" src="{html.escape(shell.chart_uri, quote=True)}"></script>'
    else:
        chart = f'<script nonce="{n}">{(ASSETS / "chart.umd.min.js").read_text(encoding="utf-8")}</script>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{content_security_policy(shell)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style nonce="{n}">{css}</style>
{chart}
</head><body data-frontend="{shell.frontend}">
{body}
<script type="application/json" id="report-charts">{json_for_script(finite(charts))}</script>
<script nonce="{n}">{script}</script>
</body></html>
"""


def page_body(page: str) -> str:
    """The ``<body>`` of a rendered page: what two shells of the same report share."""
    match = re.search(r"<body[^>]*>(.*)</body>", page, re.S)
    return match.group(1) if match else ""
