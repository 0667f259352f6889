"""Static analysis of PyTorch training code (libcst). No editor or LSP code lives here.

The public API used by the front ends:

- :func:`analyze_source` / :func:`analyze_file` → :class:`FileReport` (findings + problems)
- :func:`fix_source` → the text with every safe fix applied, and its report
- :class:`Config` (``[tool.torchsanity]``), :class:`Project` (cross-file helper resolution)
- :func:`all_rules` / :func:`get_rule` — the rule catalog with docs
"""

from .config import Config, ConfigError
from .engine import analyze_file, analyze_source, fix_source
from .findings import FileProblem, FileReport, Finding, Fix, Position, Severity, TextEdit
from .fixes import apply_edits, apply_fixes
from .project import Project
from .registry import all_rules, docs_url, get_rule
from .suppression import add_noqa

__all__ = [
    "Config", "ConfigError", "FileProblem", "FileReport", "Finding", "Fix", "Position", "Project", "Severity",
    "TextEdit", "add_noqa", "all_rules", "analyze_file", "analyze_source", "apply_edits", "apply_fixes",
    "docs_url", "fix_source", "get_rule",
]
