"""What `torchsanity check --fix` / `--diff` write: files, atomically and never through a symlink, and
unified diffs that `patch` and `git apply` accept for any text.

- :func:`write_fixed` replaces a file by a temporary file created next to it with ``O_EXCL`` and
  ``O_NOFOLLOW`` (so a planted ``<file>.torchsanity-tmp`` symlink is never followed) and renamed over
  it; it keeps the file's permission bits and encoding (PEP 263 cookie, UTF-8 BOM). A symlinked file is
  refused unless ``follow_symlinks``, and then only its resolved target inside the project is written.
- :func:`unified_diff` splits lines only at ``\\n``, as `patch` and `git` do (form feeds, lone ``\\r`` and
  U+2028 stay inside their line), and marks a last line without one with ``\\ No newline at end of file``.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import sys
import tempfile
import tokenize
from pathlib import Path
from typing import Sequence

from .check_formats import problem_line


class FixWriteError(OSError):
    """A fixed file that was not written, and why (the file is left as it was)."""


# ---- diffs -----------------------------------------------------------------------------------------


def _diff_lines(text: str) -> list[str]:
    """``text`` cut after each ``\\n`` (only there: the line breaks `patch` and `git apply` see)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def unified_diff(before: str, after: str, path: str) -> str:
    """A unified diff from ``before`` to ``after`` that `patch -p1` and `git apply` accept."""
    out = []
    for line in difflib.unified_diff(_diff_lines(before), _diff_lines(after), fromfile=f"a/{path}", tofile=f"b/{path}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


_LONE_LF = re.compile(r"(?<!\r)\n")


def keep_line_endings(source: str, fixed: str) -> str:
    """In a file whose every line ends in ``\\r\\n``, make any ``\\n`` a fix wrote match (files with mixed
    line endings are left as the engine wrote them: each inserted line takes its neighbour's)."""
    if "\r\n" in source and not _LONE_LF.search(source) and "\r" not in source.replace("\r\n", ""):
        return _LONE_LF.sub("\r\n", fixed)
    return fixed


# ---- writes ----------------------------------------------------------------------------------------


def _encoding_of(data: bytes) -> str:
    lines = iter(data.splitlines(keepends=True))
    encoding, _ = tokenize.detect_encoding(lambda: next(lines, b""))
    return encoding  # a PEP 263 cookie's encoding, or "utf-8-sig" when the file starts with a BOM


def _read_no_follow(path: str) -> tuple[bytes, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(), info
    finally:
        os.close(fd)


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def _target(path: str, follow_symlinks: bool, root: str | Path | None) -> str:
    """The file to replace: ``path`` itself, or (with ``follow_symlinks``) the file its symlink resolves
    to, which must lie inside ``root``."""
    info = os.lstat(path)
    if not stat.S_ISLNK(info.st_mode):
        return path
    if not follow_symlinks:
        raise FixWriteError(f"{path} is a symbolic link; not written (use --follow-symlinks to write its target)")
    resolved = os.path.realpath(path)
    project = os.path.realpath(root if root is not None else os.getcwd())
    if not _inside(resolved, project):
        raise FixWriteError(f"{path} links to {resolved}, outside the project ({project}); not written")
    if os.path.islink(resolved) or not os.path.isfile(resolved):
        raise FixWriteError(f"{path} does not resolve to a regular file; not written")
    return resolved


def write_fixed(path: str, text: str, follow_symlinks: bool = False, root: str | Path | None = None,
                expected: str | None = None) -> None:
    """Replace the file at ``path`` by ``text`` atomically, keeping its mode and encoding; raises
    :class:`FixWriteError` (or another ``OSError`` / ``UnicodeEncodeError``) and leaves the file as it
    was when it cannot. ``expected``: the text the fixes were computed from; a file that no longer holds
    it (an editor saved it meanwhile) is not overwritten."""
    target = _target(path, follow_symlinks, root)
    old, info = _read_no_follow(target)
    if not stat.S_ISREG(info.st_mode):
        raise FixWriteError(f"{path} is not a regular file; not written")
    encoding = _encoding_of(old)
    if expected is not None and old.decode(encoding, errors="replace").removeprefix("\ufeff") != expected:
        raise FixWriteError(f"{path} changed while it was being fixed; not written")
    data = text.encode(encoding)
    directory, name = os.path.split(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".torchsanity-tmp")  # O_EXCL | O_NOFOLLOW
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), stat.S_IMODE(info.st_mode))
            try:
                os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            except OSError:
                pass  # not ours to give away: the file keeps the writer's owner
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_fixed_for(path: str, text: str, config, expected: str | None = None) -> None:
    """:func:`write_fixed` with the options of ``config`` (a :class:`~torchsanity.analyzers.Config`)."""
    write_fixed(path, text, bool(getattr(config, "follow_symlinks", False)), getattr(config, "root", None), expected)


# ---- the `--diff` report -----------------------------------------------------------------------------


def hidden_fixes(reports, unsafe: bool) -> int:
    """How many findings have an unsafe fix that was not applied (``--unsafe-fixes`` would)."""
    if unsafe:
        return 0
    return sum(1 for report in reports for f in report.findings if f.fix is not None and not f.fix.is_safe)


def hidden_note(hidden: int) -> str:
    return f"{hidden} hidden fix{'es' if hidden != 1 else ''} can be enabled with the `--unsafe-fixes` option"


def report_diff(results: Sequence, out, args) -> int:
    """Print the diffs of ``results`` to ``out`` and a summary to stderr; the exit status."""
    diffs = [r for r in results if r.diff]
    for result in diffs:
        out.write(result.diff)
    for result in results:
        for problem in result.report.problems:
            print(problem_line(problem), file=sys.stderr)
    fixed = sum(r.fixed for r in diffs)
    hidden = hidden_fixes([r.report for r in results], bool(getattr(args, "unsafe_fixes", False)))
    if not args.quiet:
        note = f" ({hidden_note(hidden)})" if hidden else ""
        if diffs:
            files = f"{len(diffs)} file{'s' if len(diffs) != 1 else ''}"
            print(f"Would fix {fixed} problem{'s' if fixed != 1 else ''} in {files}{note}.", file=sys.stderr)
        else:
            print(f"No fixes available{note}.", file=sys.stderr)
    return 1 if diffs or any(r.report.problems for r in results) else 0
