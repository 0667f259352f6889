"""What the probe and the watch requests share: one job per script, run in a thread pool, found by its URI, its
request id or its work-done token; stopped by ``$/cancelRequest``, by its progress or at shutdown; the
work-done progress it reports on (the client's token, or one the server creates)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lsprotocol import types

if TYPE_CHECKING:
    from .lsp_probe import ProbeHost

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """One running probe or watch: its params (with ``uri``, ``script`` and ``token``) and its request."""

    params: Any
    request_id: Any
    cancel: threading.Event = field(default_factory=threading.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    token: types.ProgressToken | None = None
    superseded: bool = False


J = TypeVar("J", bound=Job)


def call_threadsafe(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    """``fn(*args)`` on ``loop``, from another thread; nothing once the loop is gone (exit)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


async def await_runner(future: asyncio.Future, cancel: threading.Event) -> Any:
    """What the runner thread behind ``future`` returns. When pygls cancels the awaiting task
    (``$/cancelRequest``) the thread runs on until told: set ``cancel``, give it up to 30 s, re-raise."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=30)
        except BaseException:  # noqa: BLE001 - whatever the runner did, we are cancelled
            pass
        raise


class JobManager(Generic[J]):
    """Jobs of one kind (``probe`` or ``watch``), one per script URI, with their cancellation and progress."""

    def __init__(self, host: ProbeHost, kind: str) -> None:
        self.host = host
        self.kind = kind
        self.by_uri: dict[str, J] = {}
        self.by_request: dict[Any, J] = {}
        self.by_token: dict[Any, J] = {}
        self.diagnostics: dict[str, list[types.Diagnostic]] = {}  # client URI -> this kind's diagnostics
        self._thread_prefix = f"torchsanity-{kind}"
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=self._thread_prefix)

    # ---- stopping -------------------------------------------------------------------------------

    def cancel_request(self, request_id: Any) -> None:
        job = self.by_request.get(request_id)
        if job is not None:
            logger.info("%s of %s cancelled by $/cancelRequest", self.kind, job.params.uri)
            job.cancel.set()

    def cancel_token(self, token: Any) -> None:
        job = self.by_token.get(token)
        if job is not None:
            logger.info("%s of %s cancelled from its progress", self.kind, job.params.uri)
            job.cancel.set()

    def cancel_all(self) -> None:
        for job in list(self.by_uri.values()):
            job.cancel.set()

    async def wait_all(self, timeout: float = 15.0) -> None:
        jobs = list(self.by_uri.values())
        if jobs:
            await asyncio.wait([asyncio.ensure_future(j.done.wait()) for j in jobs], timeout=timeout)

    def shutdown_blocking(self, timeout: float = 15.0) -> None:
        """Cancel every job and wait (blocking) for the runner threads to return."""
        self.cancel_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        for thread in list(threading.enumerate()):
            if thread.name.startswith(self._thread_prefix) and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> list[str]:
        return sorted(self.by_uri)

    # ---- one job's life -------------------------------------------------------------------------

    async def _start(self, job: J) -> None:
        """Stop the script's running job (it answers ``superseded``), wait for it, and register ``job``."""
        previous = self.by_uri.get(job.params.uri)
        if previous is not None:
            previous.superseded = True
            previous.cancel.set()
            await previous.done.wait()
        self.by_uri[job.params.uri] = job
        if job.request_id is not None:
            self.by_request[job.request_id] = job

    def _forget(self, job: J) -> None:
        """``job`` has answered: unregister it and wake whoever waits for it."""
        if self.by_uri.get(job.params.uri) is job:
            del self.by_uri[job.params.uri]
        self.by_request.pop(job.request_id, None)
        if job.token is not None:
            self.by_token.pop(job.token, None)
        job.done.set()

    # ---- progress -------------------------------------------------------------------------------

    async def _begin_progress(self, job: J, percentage: int | None) -> None:
        token = job.params.token
        if token is None and self.host.supports_progress():
            token = f"torchsanity-{self.kind}-{uuid.uuid4()}"
            try:
                await asyncio.wait_for(self.host.progress.create_async(token), timeout=10)
            except Exception as error:  # noqa: BLE001 - no progress is better than no run
                logger.warning("client refused progress token: %s", error)
                token = None
        if token is None:
            return
        job.token = token
        self.by_token[token] = job
        self.host.progress.begin(token, types.WorkDoneProgressBegin(
            title=f"torchsanity {self.kind}", message=f"starting {Path(job.params.script).name}", cancellable=True,
            percentage=percentage))

    def _end_progress(self, job: J, message: str) -> None:
        if job.token is None:
            return
        token, job.token = job.token, None
        self.host.progress.end(token, types.WorkDoneProgressEnd(message=message))
        self.host.progress.tokens.pop(token, None)
