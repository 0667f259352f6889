"""Static analysis of PyTorch training code (libcst). No editor or LSP code lives here.

The public API used by the front ends:

- :func:`analyze_source` / :func:`analyze_file` → :class:`FileReport` (findings + problems)
- :func:`fix_source` → the text with every safe fix applied, and its report
- :class:`Config` (``[tool.torchsanity]``), :class:`Project` (cross-file helper resolution)
- :func:`all_rules` / :func:`get_rule` — the rule catalog with docs
"""

from .config import Config, ConfigError
from .findings import FileProblem, FileReport, Finding, Fix, Position, Severity, TextEdit

# The rest needs libcst (and the rules): loaded on first use, so that a `check` run answered from the cache
# never imports them.
_LAZY = {
    "analyze_file": "engine", "analyze_source": "engine", "fix_source": "engine", "apply_edits": "fixes",
    "apply_fixes": "fixes", "Project": "project", "all_rules": "registry", "docs_url": "registry",
    "get_rule": "registry", "add_noqa": "suppression",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Config", "ConfigError", "FileProblem", "FileReport", "Finding", "Fix", "Position", "Project", "Severity",
    "TextEdit", "add_noqa", "all_rules", "analyze_file", "analyze_source", "apply_edits", "apply_fixes",
    "docs_url", "fix_source", "get_rule",
]
