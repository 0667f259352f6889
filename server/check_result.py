"""What `torchsanity check` knows of one file after its run (:class:`FileResult`) and what checking one file
may cost (:class:`Budget`); apart from the workers, so that a run answered from the cache does not import
them."""

from __future__ import annotations

from dataclasses import dataclass

# What one file (with the sibling modules it imports) may cost, unless --file-timeout / --file-memory say.
DEFAULT_FILE_TIMEOUT = 300.0  # seconds of wall-clock time
DEFAULT_FILE_MEMORY = 2048  # megabytes of address space beyond what the worker started with (Linux)


@dataclass(frozen=True)
class Budget:
    """What checking one file may cost: ``seconds`` of wall-clock time and ``megabytes`` of memory
    (0: unlimited). The memory cap is the worker's RLIMIT_AS, so it holds on Linux only."""

    seconds: float = DEFAULT_FILE_TIMEOUT
    megabytes: int = DEFAULT_FILE_MEMORY


@dataclass
class FileResult:
    report: object  # FileReport
    fixed: int = 0
    diff: str = ""
    write_error: str | None = None
    dependencies: dict | None = None  # project file -> existed, for the cache (check_file.Analysis)
    skipped: bool = False  # not parsed: it cannot hold a finding
    fixed_codes: dict | None = None  # code -> how many findings --fix removed (--show-fixes)
    summary: dict | None = None  # what the file contributes to the project index (project_summary)
    questions: list | None = None  # [function, code] asked of the index, settled by the parent
