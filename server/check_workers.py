"""Where `torchsanity check` runs the engine: worker processes, so that one file cannot take the run down.

Every file is analysed in a worker process (also with ``-j 1``, which starts one); each worker keeps its own
:class:`Project` per root, so helpers imported from sibling modules resolve (and are parsed) inside the
worker that checks the importer. With each result a worker returns the file's summary for the project index
(read from the same text) and the questions about callers its analysis deferred; the parent settles them
(:func:`.check_session.settle`). Each file has a :class:`Budget`: the parent kills a worker that runs past
the time budget, and a worker caps its own address space (``RLIMIT_AS``) at the memory budget. A file that
runs over a budget or crashes its worker (a stack overflow in native code, an abort) gets one
``SAN000 skipped: …`` problem; the worker is replaced and the other files are checked.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter, deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .check_result import DEFAULT_FILE_MEMORY, DEFAULT_FILE_TIMEOUT, Budget, FileResult  # noqa: F401 (defaults read here too)
from .file_discovery import Target

if TYPE_CHECKING:
    from ..analyzers import FileReport

# Fewer files than this are checked by one worker: more cost more to start than they save.
PARALLEL_THRESHOLD = 12


_PROJECTS: dict[str, object] = {}


def forget_projects() -> None:
    """Drop the projects (and the sibling modules they parsed) kept from an earlier run (``--watch``)."""
    _PROJECTS.clear()


def _project(root: str | None):
    from ..analyzers import Project

    if root is None:
        return None
    project = _PROJECTS.get(root)
    if project is None:
        project = _PROJECTS[root] = Project(root)
    return project


def check_target(target: Target, mode: str) -> FileResult:
    """Analyse (``mode="check"``), fix and write (``"fix"``) or diff (``"diff"``) one file. Never raises."""
    from ..analyzers import FileProblem, FileReport, analyze_file, analyze_source, fix_source
    from ..analyzers.source_text import read_source
    from .fix_output import keep_line_endings, unified_diff, write_fixed_for
    from .check_file import fix_notebook, is_notebook

    path = target.path
    try:
        project = _project(target.project_root)
        if project is not None:
            project.defer = False  # --fix / --diff answer questions at once (the index reads what it needs)
        if mode != "check" and is_notebook(path) and target.stdin_text is None:
            return fix_notebook(target, mode, project)
        if mode == "check" or target.stdin_text is not None:
            return _check_indexed(target, project)
        try:
            source = read_source(path)
        except (OSError, UnicodeDecodeError, ValueError, SyntaxError):
            return FileResult(analyze_file(path, target.config, project))  # reports why it is unreadable
        before = analyze_source(source, path, target.config, project)
        if not any(f.fix is not None for f in before.findings):
            return FileResult(before)
        fixed_text, after = fix_source(source, path, target.config, project)
        fixed_text = keep_line_endings(source, fixed_text)
        if fixed_text == source:
            return FileResult(before)
        remaining = Counter(f.code for f in after.findings)
        fixed_codes = {code: n - remaining.get(code, 0) for code, n in Counter(f.code for f in before.findings).items()
                       if n > remaining.get(code, 0)}
        fixed = sum(fixed_codes.values())
        if mode == "diff":
            diff = unified_diff(source, fixed_text, path)
            return FileResult(before, fixed=fixed, diff=diff)
        try:
            write_fixed_for(path, fixed_text, target.config, expected=source)
        except (OSError, UnicodeEncodeError) as error:
            return FileResult(before, write_error=f"cannot write fixes: {error}")
        return FileResult(after, fixed=fixed, fixed_codes=fixed_codes)
    except MemoryError:
        raise  # over the worker's memory budget: the worker reports it
    except Exception as error:  # an engine bug: one line for this file, the other files still run
        report = FileReport(path=path)
        report.problems.append(FileProblem(path, "internal-error", f"internal error: {type(error).__name__}: {error}"))
        return FileResult(report)


def _check_indexed(target: Target, project) -> FileResult:
    """Analyse one target and summarise it for the project index; questions about the callers of its
    functions are deferred to the parent, which sees every summary (read with ``ast``: see
    :func:`_analyze_summarized`)."""
    from ..analyzers import FileReport
    from ..analyzers.source_text import read_source
    from .check_file import analyze_target, is_notebook, read_target_text

    path = target.path
    raw = target.stdin_text
    if raw is None:
        try:
            raw = Path(path).read_text(encoding="utf-8") if is_notebook(path) else read_source(path)
        except (OSError, UnicodeDecodeError, ValueError, SyntaxError):
            raw = None  # analyze_target reports why
    text = None
    if raw is not None and project is not None:
        try:
            text = read_target_text(path, raw)
        except (OSError, UnicodeDecodeError, ValueError, SyntaxError):
            text = None  # analyze_target reports why
    if text is None:
        analysis = analyze_target(path, target.config, project, raw)
        return FileResult(analysis.report, dependencies=analysis.dependencies, skipped=analysis.skipped)
    project.defer = True
    report, summary, looked = _analyze_summarized(text, path, target.config, project)
    questions = sorted(project.questions.pop(Path(path).resolve(), ()))
    if report is None:  # cannot hold a finding: not parsed with libcst
        return FileResult(FileReport(path=path), dependencies=looked, skipped=True, summary=summary)
    return FileResult(report, dependencies=project.dependencies(path), summary=summary,
                      questions=[list(q) for q in questions])


def _analyze_summarized(text: str, path: str, config, project) -> tuple[FileReport | None, dict | None, dict]:
    """``(report, summary, looked)`` of the Python ``text``: the report is None when the file cannot hold
    a finding (then it is not parsed with libcst, and ``looked`` lists the project files the relevance test
    read). The summary comes from CPython's ``ast`` (about a sixth of a libcst parse, measured in
    ``tests/bench/bench_check.py``): summarising the libcst tree costs more, because libcst nodes carry no lines."""
    from ..analyzers.engine import analyze_source
    from ..analyzers.project_summary import summarize
    from ..analyzers.relevance import may_hold_finding

    relevant, looked = may_hold_finding(text, path, project)
    summary = summarize(text)
    if not relevant and summary is not None:  # CPython parses it (else it is analysed: its syntax error is reported)
        return None, summary, looked
    return analyze_source(text, path, config, project), summary, looked


def _worker_count(requested: int, files: int) -> int:
    if requested == 1 or files < PARALLEL_THRESHOLD:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = requested or cores
    return max(1, min(workers, files))


def _load_engine() -> None:
    """Import libcst, the engine and every rule (a run answered from the cache never does)."""
    from ..analyzers import engine  # noqa: F401
    from ..analyzers.registry import all_rules

    all_rules()


def _pool_context():
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")  # workers inherit the imported engine: no start-up import
    return multiprocessing.get_context()


def check_targets(targets: Sequence[Target], mode: str = "check", jobs: int = 0,
                  progress: Callable[[int], None] | None = None, budget: Budget | None = None) -> list[FileResult]:
    """Check every target in worker processes (one when there are few files), each file within
    ``budget``; results in the order of ``targets``. ``progress(n)`` is told each time ``n`` more files
    are done. A file that crashes its worker, or takes more than its budget, gets one ``SAN000 skipped``
    problem; its worker is replaced and the other files are checked."""
    progress = progress or (lambda done: None)
    budget = budget or Budget()
    results: list[FileResult | None] = [None] * len(targets)
    # Big files first, so the last worker does not finish alone on a large file.
    pending = deque(sorted(range(len(targets)), key=lambda i: -_size(targets[i].path)))
    context = _pool_context()
    if targets and context.get_start_method() == "fork":
        _load_engine()  # before forking: the workers inherit it instead of each importing it
    workers = [_Worker(context, mode, budget) for _ in range(_worker_count(jobs, len(targets)) if targets else 0)]
    avoid: set[str] = set()  # sibling modules that crashed or overran a worker: importers skip them
    try:
        while pending or any(w.index is not None for w in workers):
            for slot, worker in enumerate(workers):
                if worker.index is None and pending:
                    if not worker.process.is_alive():
                        worker.stop()
                        worker = workers[slot] = _Worker(context, mode, budget)
                    index = pending.popleft()
                    worker.start(index, targets[index], frozenset(avoid))
            busy = [w for w in workers if w.index is not None]
            deadline = min(w.deadline for w in busy)
            timeout = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
            wait([w.connection for w in busy] + [w.process.sentinel for w in busy], timeout)
            for worker in workers:
                if worker.index is None:
                    continue
                index = worker.index
                outcome = worker.outcome(targets[index].path)
                if outcome is None:
                    continue
                result, retire, sibling = outcome
                if sibling is not None:  # it was parsing a module the file imports: check it again without
                    avoid.add(sibling)
                    pending.appendleft(index)
                else:
                    results[index] = result
                    progress(1)
                if retire:
                    worker.stop()  # replaced when there is more to check
    finally:
        for worker in workers:
            worker.stop()
    return results  # type: ignore[return-value]


# ---- one worker process ----------------------------------------------------------------------------


class _Worker:
    """A worker process and its pipe; ``index`` is the target it is checking (None when idle)."""

    def __init__(self, context, mode: str, budget: Budget) -> None:
        self.budget = budget
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, mode, budget.megabytes), daemon=True)
        self.process.start()
        child.close()
        self.index: int | None = None
        self.deadline = math.inf
        self.siblings: list[str] = []  # the sibling modules it is parsing now, innermost last

    def start(self, index: int, target: Target, avoid: frozenset[str]) -> None:
        self.index = index
        self.deadline = time.monotonic() + self.budget.seconds if self.budget.seconds else math.inf
        self.siblings = []
        try:
            self.connection.send((index, target, avoid))
        except OSError:
            pass  # it died: outcome() says so

    def outcome(self, path: str) -> tuple[FileResult | None, bool, str | None] | None:
        """None while the target is being checked; then ``(result, retire, None)``, or
        ``(None, True, sibling)`` when the worker was lost while parsing a module the target imports."""
        try:
            while self.connection.poll():
                message = self.connection.recv()
                if message[0] == "parsing":
                    _, sibling, entering = message
                    if entering:
                        self.siblings.append(sibling)
                    elif self.siblings:
                        self.siblings.pop()
                    continue
                self.index = None
                return message[1], message[2], None
        except (EOFError, OSError):
            pass  # it died while answering
        if self.process.is_alive() and time.monotonic() < self.deadline:
            return None
        if self.process.is_alive():
            self.process.kill()
            reason = f"not checked within its {self.budget.seconds:g} s time budget (--file-timeout)"
        else:
            reason = _crash_reason(self.process.exitcode, self.budget)
        self.index = None
        if self.siblings:
            return None, True, self.siblings[-1]
        return _skipped(path, reason), True, None

    def stop(self) -> None:
        """End the worker (killed if it is busy or does not exit at once) and close its pipe."""
        if self.process.is_alive():
            if self.index is None:
                try:
                    self.connection.send(None)
                except OSError:
                    pass
                self.process.join(1)
            if self.process.is_alive():
                self.process.kill()
        self.process.join()
        self.connection.close()
        self.index = None


def _serve(connection, mode: str, megabytes: int) -> None:
    """A worker's loop: check each target it is sent, within ``megabytes`` of memory, until told to stop.
    After running out of memory it answers and exits: the parent starts a fresh worker."""
    from ..analyzers.engine import OUT_OF_MEMORY

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    _quiet_stderr()  # a native abort ("memory allocation … failed") is reported as the file's one line
    _limit_memory(megabytes)
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        index, target, avoid = job
        project = _project(target.project_root)
        if project is not None:  # the parent learns which sibling module a crash happened in
            project.avoid = frozenset(Path(p) for p in avoid)
            project.watch = lambda path, entering: connection.send(("parsing", str(path), entering))
        try:
            result = check_target(target, mode)
            out_of_memory = any(p.message == OUT_OF_MEMORY for p in result.report.problems)
        except MemoryError:
            out_of_memory = True
        if out_of_memory:
            result = _skipped(target.path, f"needs more than its {megabytes} MB memory budget (--file-memory)")
        connection.send((index, result, out_of_memory))
        if out_of_memory:
            return


def _quiet_stderr() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass


def _limit_memory(megabytes: int) -> None:
    """Cap this process's address space at what it uses now plus ``megabytes`` (Linux; 0: no cap)."""
    if not megabytes or not sys.platform.startswith("linux"):
        return
    import resource

    try:
        with open("/proc/self/statm") as handle:
            used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + megabytes * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _crash_reason(exitcode: int | None, budget: Budget) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode in (signal.SIGABRT, signal.SIGKILL) and budget.megabytes:
            return f"the checker was killed by {name}, most likely over its {budget.megabytes} MB memory budget (--file-memory)"
        return f"the checker crashed on this file ({name})"
    return f"the checker's worker exited unexpectedly (exit status {exitcode})"


def _skipped(path: str, reason: str) -> FileResult:
    from ..analyzers import FileProblem, FileReport

    return FileResult(FileReport(path=path, problems=[FileProblem(path, "skipped", f"skipped: {reason}")]))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
