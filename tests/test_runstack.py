"""`manage.py runstack` (behind `make run`): up from cold, then nothing left behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from config.stack import WORKERS, ChildFailed, RestartPolicy, Supervisor, free_port, worker_argv

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.mark.live
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


_WORKER_READY = re.compile(r"worker@\S+ ready\.")


def _wait_worker_ready(log, count, timeout=45):
    # Celery logs "worker@<host> ready." once per start of the `celery`-queue worker.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(_WORKER_READY.findall(_output(log))) < count:
        time.sleep(0.3)


def _worker(processes, name, parent):
    """{(pid, start time): command line} of the Celery worker `name`'s main process."""
    return {
        key: cmd
        for key, cmd in processes.items()
        if f"--hostname {name}@" in cmd and _stat(key[0]) and _stat(key[0])[0] == parent
    }


@pytest.mark.live
def test_runstack_restarts_a_killed_worker_and_ctrl_c_still_leaves_nothing_behind(tmp_path):
    process, base_url, log = _start_runstack(tmp_path)
    try:
        _wait_ready(process, base_url, log)
        _wait_worker_ready(log, count=1)
        before = _descendants(process.pid)
        # The prefork worker: killing its main process orphans its pool processes, which the
        # launcher must reap before starting a new one.
        (old,) = _worker(before, "worker", process.pid)
        old_pool = {key: cmd for key, cmd in before.items() if _stat(key[0])[0] == old[0]}
        assert old_pool, "the prefork worker has pool processes"
        os.kill(old[0], signal.SIGKILL)

        deadline = time.monotonic() + 45
        new = {}
        while time.monotonic() < deadline and not new:
            new = _worker(_descendants(process.pid), "worker", process.pid)
            new.pop(old, None)
            time.sleep(0.3)
        assert new, _output(log)[-3000:]
        _wait_worker_ready(log, count=2)
        out = _output(log)
        assert "worker was killed by SIGKILL; restarting it in 1 s" in out, out[-3000:]
        assert "worker restarted (pid" in out
        assert len(_WORKER_READY.findall(out)) == 2, out[-3000:]
        assert _still_running(old_pool) == {}, "the killed worker's pool processes outlived it"
        assert process.poll() is None, "the stack stopped instead of restarting the worker"
        assert requests.get(f"{base_url}/readyz", timeout=5).status_code == 200

        processes = _descendants(process.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, _output(log)
    finally:
        if process.poll() is None:
            process.kill()
    assert _wait_gone({**before, **processes}) == {}
    assert "runstack | stopped" in _output(log)


def _supervise_until_failed(supervisor, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            supervisor.supervise()
        except ChildFailed as exc:
            return str(exc)
        time.sleep(0.02)
    pytest.fail("the supervisor never gave up")


def test_a_child_that_keeps_dying_is_restarted_with_backoff_then_given_up(tmp_path):
    out = open(tmp_path / "log", "w+")  # noqa: SIM115
    policy = RestartPolicy(first_delay=0.1, max_delay=0.3, burst=3, window=60)
    supervisor = Supervisor(dict(os.environ), out=out, policy=policy)
    argv = [sys.executable, "-c", "print('up', flush=True); raise SystemExit(3)"]
    started = time.monotonic()
    supervisor.start("flaky", argv, restart=True)
    try:
        reason = _supervise_until_failed(supervisor)
    finally:
        supervisor.stop_all()
    elapsed = time.monotonic() - started
    out.seek(0)
    log = out.read()
    assert reason == "flaky exited with code 3, after 3 restarts in 60 s; giving up"
    assert log.count("   flaky | up") == 4  # the first start and three restarts
    for number, delay in ((1, 0.1), (2, 0.2), (3, 0.3)):  # doubling, capped at max_delay
        assert f"flaky exited with code 3; restarting it in {delay:g} s (restart {number} of" in log
    assert elapsed >= 0.6


def test_a_child_without_restart_stops_the_supervision_naming_its_signal(tmp_path):
    out = open(tmp_path / "log", "w+")  # noqa: SIM115
    supervisor = Supervisor(dict(os.environ), out=out)
    child = supervisor.start("oneshot", [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        supervisor.supervise()  # running: nothing to do
        child.process.send_signal(signal.SIGTERM)
        assert _supervise_until_failed(supervisor) == "oneshot was killed by SIGTERM"
    finally:
        supervisor.stop_all()


def test_the_procfile_web_line_serves_sockets_as_runstack_does():
    from config.management.commands.runstack import WEB_SERVER_FLAGS

    procfile = (Path(__file__).resolve().parents[1] / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    assert " ".join(WEB_SERVER_FLAGS) in web


def test_the_procfile_runs_the_worker_layout_runstack_runs():
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    for name, layout in WORKERS.items():
        command = procfile[name].split()
        runstack = worker_argv(name, python="python")[3:]  # after `python -m celery`
        assert command[0] == "celery"
        concurrency = command.index("--concurrency")
        # The Procfile lets the environment override the concurrency; the default is the same.
        assert f":-{layout['concurrency']}}}" in command[concurrency + 1]
        del command[concurrency : concurrency + 2]
        i = runstack.index("--concurrency")
        del runstack[i : i + 2]
        assert sorted(command[1:]) == sorted(runstack)
