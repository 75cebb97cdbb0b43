"""Child-process supervision for `runstack`: start, prefix output, watch, restart, stop everything.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only the launcher,
which then stops the children in order. Each child also asks the kernel to SIGTERM it if the
launcher dies without cleaning up (PR_SET_PDEATHSIG), so nothing outlives the stack.

A long-running child that dies is started again after a backoff (a worker that lost its broker,
a web server killed by the OOM killer), like a process manager would in production; one that
keeps dying is a configuration problem, so after a few quick restarts the launcher gives up and
stops the stack, saying why.
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


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff doubles from `first_delay` up to `max_delay`; more than `burst` restarts within
    `window` seconds means the child cannot run, and the supervisor gives up."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    burst: int = 5
    window: float = 60.0


class ChildFailed(Exception):
    """A child died that is not restarted, or that died too often to keep restarting."""


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    color: str = ""
    reader: threading.Thread | None = field(default=None, repr=False)
    restart: bool = False
    restarted_at: list[float] = field(default_factory=list)  # monotonic times, recent ones only
    restart_due: float | None = None  # set while the child waits out its backoff

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Runs named child processes with prefixed output and stops them all together."""

    def __init__(self, env: dict[str, str], out=None, policy: RestartPolicy | None = None):
        self.env = env
        self.out = out or sys.stdout
        self.policy = policy or RestartPolicy()
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

    def start(self, name: str, argv: list[str], *, restart: bool = False) -> Child:
        """Start a child; with `restart`, `supervise()` starts it again whenever it dies."""
        child = Child(
            name=name,
            argv=argv,
            color=_COLORS[len(self.children) % len(_COLORS)],
            restart=restart,
        )
        self._spawn(child)
        self.children.append(child)
        return child

    def _spawn(self, child: Child) -> None:
        # Always called from the main thread: PDEATHSIG fires when the forking *thread* exits.
        child.process = subprocess.Popen(  # noqa: S603 - argv is built by the launcher itself
            child.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_detach_and_die_with_parent,
        )
        child.reader = threading.Thread(target=self._pump, args=(child, child.process), daemon=True)
        child.reader.start()

    def _pump(self, child: Child, process: subprocess.Popen) -> None:
        for raw in process.stdout:
            self.say(child.name, raw.decode(errors="replace").rstrip(), child.color)

    def supervise(self) -> None:
        """One round of watching: restart the children that died and whose backoff is over.

        Raises ChildFailed for a dead child without `restart`, or one that died more than
        `policy.burst` times within `policy.window` seconds. Call it from the main thread.
        """
        now = time.monotonic()
        for child in self.children:
            if child.restart_due is not None:
                if now >= child.restart_due:
                    child.restart_due = None
                    self._spawn(child)
                    self.say("runstack", f"{child.name} restarted (pid {child.process.pid})")
                continue
            if child.running:
                continue
            why = f"{child.name} {describe_exit(child.process.returncode)}"
            self._reap(child)
            if not child.restart:
                raise ChildFailed(why)
            policy = self.policy
            child.restarted_at = [t for t in child.restarted_at if now - t < policy.window]
            if len(child.restarted_at) >= policy.burst:
                raise ChildFailed(
                    f"{why}, after {len(child.restarted_at)} restarts in {policy.window:g} s;"
                    " giving up"
                )
            delay = min(policy.first_delay * 2 ** len(child.restarted_at), policy.max_delay)
            child.restarted_at.append(now)
            child.restart_due = now + delay
            self.say(
                "runstack",
                f"{why}; restarting it in {delay:g} s"
                f" (restart {len(child.restarted_at)} of at most {policy.burst}"
                f" in {policy.window:g} s)",
            )

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM each child (the last started first), then SIGKILL whatever is left."""
        for child in reversed(self.children):
            self._stop(child, timeout)

    def _stop(self, child: Child, timeout: float) -> None:
        child.restart_due = None
        process = child.process
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.say("runstack", f"{child.name} did not stop in {timeout:.0f} s; killing it")
        self._reap(child)

    def _reap(self, child: Child) -> None:
        # The child leads its own process group: this also reaps helpers it left behind
        # (Celery's pool processes when the worker itself was SIGKILLed, uvicorn's reloader
        # children), so a restarted child never runs beside its predecessor's orphans.
        process = child.process
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if child.reader is not None:
            child.reader.join(timeout=2)


# The Celery worker layout, shared by `runstack` and the Procfile (docs/operations.md). A relay
# task spends nearly all its time waiting for Edgegap (up to EDGEGAP_TIMEOUT per call), so the
# `relays` queue runs on threads, many per process; the matcher, housekeeping and socket pushes
# keep a small prefork worker of their own on the default `celery` queue, which slow Edgegap
# answers cannot starve.
WORKERS = {
    "worker": {"queue": "celery", "pool": "prefork", "concurrency": 2},
    "relays": {"queue": "relays", "pool": "threads", "concurrency": 16},
}


def worker_argv(name: str, *, python: str = sys.executable, concurrency: int | None = None):
    """The command line of one of the WORKERS (`concurrency` overrides its default)."""
    layout = WORKERS[name]
    return [
        python, "-m", "celery", "-A", "config", "worker",
        "--hostname", f"{name}@%h", "--queues", layout["queue"], "--pool", layout["pool"],
        "--concurrency", str(concurrency or layout["concurrency"]),
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
