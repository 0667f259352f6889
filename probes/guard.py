"""``python -m torchsanity.probes.guard COMMAND...``: run the probe child (or torchrun) so that its whole
process tree dies with the process that asked for the probe.

The guard runs no user code, so the user's script cannot replace its signal handlers or close its pipe.
It is the direct child of the CLI or the language server, the leader of the tree's process group, and a
child subreaper, so double-forked daemons are re-parented to it. The tree is its descendants, its process
group and every process carrying its tag in the environment (``setsid`` daemons whose parent exited).

It tags its tree with ``TORCHSANITY_PROBE_GUARD=PID:TOKEN`` in the environment. It ends the tree when

- the parent dies, for any reason: the watchdog pipe named in ``TORCHSANITY_PROBE_LIFELINE``
  (``FD:PARENT_PID``; the parent holds the only write end) reads end-of-file, and the parent-death signal
  (SIGTERM) arrives;
- it gets SIGTERM, SIGHUP or SIGINT (timeout, cancel);
- the command exits (anything it left running is stopped).

It exits as the command did (the same code, or the same signal), so the parent can tell an OOM kill.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import stat
import sys

from .lifeline import become_subreaper, die_with_parent, end_processes, tree

LIFELINE_ENV = "TORCHSANITY_PROBE_LIFELINE"
GUARD_ENV = "TORCHSANITY_PROBE_GUARD"
_ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class _Guard:
    def __init__(self, command: list[str]):
        self.command = command
        self.child = 0
        self.status: int | None = None  # the command's wait status
        self.signalled: int | None = None
        # This guard's own tag (a run has two trees, the probe's and the determinism run's): inherited by the
        # whole tree, setsid daemons included.
        self.marker = (GUARD_ENV, f"{os.getpid()}:{os.urandom(8).hex()}")

    def on_signal(self, signum, _frame) -> None:
        self.signalled = self.signalled or signum

    def reap(self) -> None:
        """Collect every exited child (adopted orphans included), keeping the command's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.child:
                self.status = status

    def rest_of_tree(self) -> set[int]:
        me = os.getpid()
        own_group = [me] if os.getpgrp() == me else []  # never the group of whoever started us
        found = tree([me], groups=own_group, marker=self.marker) - {me}
        if self.status is None and self.child:  # also where there is no /proc to read
            found.add(self.child)
        return found

    def end_tree(self) -> None:
        end_processes(self.rest_of_tree, grace=2.0, reap=self.reap)
        self.reap()

    def run(self, watch_fd: int | None) -> int:
        self.child = os.posix_spawnp(self.command[0], self.command, dict(os.environ, **{GUARD_ENV: self.marker[1]}))
        watched = [watch_fd] if watch_fd is not None else []
        while self.status is None and self.signalled is None:
            try:
                ready, _, _ = select.select(watched, [], [], 0.1)
            except InterruptedError:
                ready = []
            if ready and not _drain(watch_fd):
                self.signalled = signal.SIGTERM  # the parent is gone
                break
            self.reap()
        self.end_tree()
        if self.signalled is not None:
            _die_by(self.signalled)
        return _exit_like(self.status if self.status is not None else 0)


def _drain(fd: int) -> bool:
    """Read what is there; False at end-of-file (the write end closed)."""
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return True
    except OSError:
        return False


def _die_by(signum: int) -> None:
    """End this process by ``signum`` (without a core file), as the command it mirrors did."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    try:
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
        pass
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def _exit_like(status: int) -> int:
    if os.WIFSIGNALED(status):
        _die_by(os.WTERMSIG(status))
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 2


def _lifeline() -> tuple[int | None, int | None]:
    """The watchdog pipe's read end (checked to be a pipe) and the expected parent, from the environment."""
    raw = os.environ.pop(LIFELINE_ENV, "")
    try:
        fd_text, parent_text = raw.split(":")
        fd, parent = int(fd_text), int(parent_text)
    except ValueError:
        return None, None
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None, parent
        os.set_inheritable(fd, False)  # the command does not need it
        os.set_blocking(fd, False)
    except OSError:
        return None, parent
    return fd, parent


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("usage: python -m torchsanity.probes.guard COMMAND [ARGS...]", file=sys.stderr)
        return 2
    guard = _Guard(command)
    for signum in _ENDING:
        signal.signal(signum, guard.on_signal)
    watch_fd, parent = _lifeline()
    become_subreaper()
    if parent is not None and not die_with_parent(parent, signal.SIGTERM):
        return 1  # the parent died before we were tied to it: start nothing
    return guard.run(watch_fd)


if __name__ == "__main__":
    sys.exit(main())
