"""Child-process supervision for `runstack`: start, prefix output, watch, stop everything.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only the launcher,
which then stops the children in order. Each child also asks the kernel to SIGTERM it if the
launcher dies without cleaning up (PR_SET_PDEATHSIG), so nothing outlives the stack.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

_PR_SET_PDEATHSIG = 1
_COLORS = ("36", "33", "35", "32", "34", "31")


def _detach_and_die_with_parent():  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(OSError):  # not Linux: the launcher's own cleanup still applies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    color: str = ""
    reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Runs named child processes with prefixed output and stops them all together."""

    def __init__(self, env: dict[str, str], out=None):
        self.env = env
        self.out = out or sys.stdout
        self.children: list[Child] = []
        self._write_lock = threading.Lock()
        self._width = 8
        self._color = self.out.isatty()

    def say(self, name: str, line: str, color: str = "") -> None:
        prefix = f"{name:>{self._width}} |"
        if self._color and color:
            prefix = f"\033[{color}m{prefix}\033[0m"
        with self._write_lock:
            self.out.write(f"{prefix} {line}\n")
            self.out.flush()

    def start(self, name: str, argv: list[str]) -> Child:
        # Always called from the main thread: PDEATHSIG fires when the forking *thread* exits.
        child = Child(name=name, argv=argv, color=_COLORS[len(self.children) % len(_COLORS)])
        child.process = subprocess.Popen(  # noqa: S603 - argv is built by the launcher itself
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_detach_and_die_with_parent,
        )
        child.reader = threading.Thread(target=self._pump, args=(child,), daemon=True)
        child.reader.start()
        self.children.append(child)
        return child

    def _pump(self, child: Child) -> None:
        for raw in child.process.stdout:
            self.say(child.name, raw.decode(errors="replace").rstrip(), child.color)

    def first_exited(self) -> Child | None:
        for child in self.children:
            if not child.running:
                return child
        return None

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM each child (the last started first), then SIGKILL whatever is left."""
        for child in reversed(self.children):
            self._stop(child, timeout)

    def _stop(self, child: Child, timeout: float) -> None:
        process = child.process
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.say("runstack", f"{child.name} did not stop in {timeout:.0f} s; killing it")
        # The child leads its own process group: this also reaps helpers it left behind
        # (Celery's pool processes, uvicorn's reloader children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if child.reader is not None:
            child.reader.join(timeout=2)
