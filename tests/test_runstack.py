"""`manage.py runstack` (behind `make run`): up from cold, then nothing left behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.live


def _stat(pid):
    """(parent pid, start time) of a process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[19]


def _descendants(root):
    """{(pid, start time): command line} of every process below `root`."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in parents.items():
            if ppid == parent:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found[(pid, started)] = cmdline.decode(errors="replace")
                frontier.append(pid)
    return found


def _still_running(processes):
    # A pid counts only with the same start time: pids get reused.
    return {
        key: cmd for key, cmd in processes.items() if _stat(key[0]) and _stat(key[0])[1] == key[1]
    }


def _start_runstack(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "EDGEGAP_API_URL")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'stack.sqlite3'}",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    log = open(tmp_path / "runstack.log", "w+")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runstack"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    return process, f"http://127.0.0.1:{port}", log


def _wait_ready(process, base_url, log, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    log.seek(0)
    pytest.fail(f"runstack not ready within {timeout} s:\n{log.read()[-4000:]}")


def _output(log):
    log.seek(0)
    return log.read()


def _wait_gone(processes, timeout=15):
    deadline = time.monotonic() + timeout
    while _still_running(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _still_running(processes)


def test_runstack_serves_from_cold_and_ctrl_c_leaves_nothing_behind(tmp_path):
    process, base_url, log = _start_runstack(tmp_path)
    try:
        _wait_ready(process, base_url, log)
        assert requests.get(f"{base_url}/healthz", timeout=5).status_code == 200
        ready = requests.get(f"{base_url}/readyz", timeout=5).json()
        assert ready["checks"] == {"database": "ok", "redis": "ok"}
        processes = _descendants(process.pid)
        names = " ".join(processes.values())
        for expected in ("redis-server", "relay_emulator", "uvicorn", "celery -A config worker",
                         "celery -A config beat"):  # fmt: skip
            assert expected in names
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, _output(log)
    finally:
        if process.poll() is None:
            process.kill()
    assert _wait_gone(processes) == {}
    assert "runstack | stopped" in _output(log)


def test_runstack_names_a_dead_child_and_stops_the_rest(tmp_path):
    process, base_url, log = _start_runstack(tmp_path)
    try:
        _wait_ready(process, base_url, log)
        processes = _descendants(process.pid)
        beat = [pid for (pid, _), cmd in processes.items() if "celery -A config beat" in cmd]
        os.kill(beat[0], signal.SIGKILL)
        assert process.wait(timeout=30) != 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "beat exited with code -9; stopping the stack" in _output(log)
    assert _wait_gone(processes) == {}
