"""A child process in its own process group, its output kept in files."""

import atexit
import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

POLL_INTERVAL_S = 0.02
STOP_TIMEOUT_S = 10.0
OUTPUT_TAIL_CHARS = 4000


class PeerError(RuntimeError):
    """A peer process failed to start, or exited when it should not have."""


class ChildProcess:
    """Run a command as a new session so that its whole group can be killed."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self._env = None if env is None else dict(env)
        self._cwd = cwd
        self._dir = tempfile.TemporaryDirectory(prefix=f"{name}-")
        self.stdout_path = Path(self._dir.name) / "stdout"
        self.stderr_path = Path(self._dir.name) / "stderr"
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the command with stdin closed and output going to files."""
        if self._popen is not None:
            raise PeerError(f"{self.name} was started already")
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
        # A backstop for callers that never reach close(), e.g. a script
        # ending on an exception; pytest fixtures close explicitly.
        atexit.register(self._kill_group)

    @property
    def started(self) -> bool:
        """Whether start() was called."""
        return self._popen is not None

    @property
    def pid(self) -> int:
        """The process id of the started command."""
        return self._process().pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while the process runs."""
        return self._process().poll()

    def stdout(self) -> str:
        """Everything the process wrote on stdout so far."""
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        """Everything the process wrote on stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        """The command, its state and the tail of its output, for failure messages."""
        return (
            f"{self.name} {self.argv} returncode={self.returncode}\n"
            f"--- stdout ---\n{self.stdout()[-OUTPUT_TAIL_CHARS:]}\n"
            f"--- stderr ---\n{self.stderr()[-OUTPUT_TAIL_CHARS:]}"
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until true; raise PeerError on exit or timeout."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.returncode is not None:
                raise PeerError(f"exited before {what}: {self.describe()}")
            if time.monotonic() >= deadline:
                raise PeerError(f"not {what} after {timeout}s: {self.describe()}")
            time.sleep(POLL_INTERVAL_S)

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until stdout or stderr matches the regular expression `pattern`."""
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def matched() -> bool:
            match = regex.search(self.stderr()) or regex.search(self.stdout())
            if match:
                found.append(match)
            return match is not None

        self.wait_until(matched, timeout, f"printing {pattern!r}")
        return found[0]

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process itself, not to its group."""
        if self.returncode is None:
            self._process().send_signal(sig)

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send SIGTERM, wait up to `timeout` seconds, then kill; return the exit code."""
        self.send_signal(signal.SIGTERM)
        try:
            code = self._process().wait(timeout)
        except subprocess.TimeoutExpired:
            code = self.kill()
        self._kill_group()
        return code

    def kill(self) -> int:
        """Kill the whole process group with SIGKILL and return the exit code."""
        self._kill_group()
        return self._process().wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        """Kill whatever still runs and remove the output files."""
        if self._popen is not None:
            self.kill()
            atexit.unregister(self._kill_group)
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _process(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise PeerError(f"{self.name} was not started")
        return self._popen

    def _kill_group(self) -> None:
        # The group id equals the pid because the child leads a new session;
        # children it forked die with it even after the leader has exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process().pid, signal.SIGKILL)


Child = TypeVar("Child", bound=ChildProcess)


class Processes:
    """The child processes of one test, stopped together at its end."""

    def __init__(self) -> None:
        self._children: list[ChildProcess] = []

    def start(self, child: Child) -> Child:
        """Start `child` (waiting as its class does) and return it."""
        # Registered before starting so that a failed start is cleaned up too.
        self._children.append(child)
        child.start()
        return child

    def reports(self) -> list[tuple[str, str]]:
        """(name, state and output) of every child, for a failure report."""
        return [(child.name, child.describe()) for child in self._children if child.started]

    def close(self) -> None:
        """Kill every child still running, last started first."""
        for child in reversed(self._children):
            child.close()
