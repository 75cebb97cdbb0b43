"""`make test` leaves no SQLite files in var/ (issue 13): not the run's own WAL and index, even
when a process it started still held the database at the end, and not those earlier killed runs
left (tests/sqlite_files.py says why they were left)."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
VAR = Path(settings.VAR_DIR)


def _ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _files_of(pid: int) -> list[str]:
    return sorted(path.name for path in VAR.glob(f"test-db-{pid}.sqlite3*"))


def test_a_test_run_leaves_no_sqlite_files_behind(tmp_path):
    VAR.mkdir(exist_ok=True)
    # A killed run's leftovers (its process is gone), and a live run's (must stay).
    dead = _ended_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    planted = [VAR / f"test-db-{pid}.sqlite3-{kind}" for pid in (dead, live.pid)
               for kind in ("wal", "shm")]  # fmt: skip
    try:
        for path in planted:
            path.write_bytes(b"x")
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
             "tests/sqlite_wal_case.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        holder = int(re.search(r"holder pid (\d+)", run.stdout).group(1))
        # The inner run's pid names its database (config/settings.py).
        inner = _inner_pid(run.stdout)
        assert _files_of(inner) == []
        deadline = time.monotonic() + 10  # and after the holder closed it too
        while _running(holder) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _files_of(inner) == []
        assert _files_of(dead) == []
        assert _files_of(live.pid) == [f"test-db-{live.pid}.sqlite3-shm",
                                        f"test-db-{live.pid}.sqlite3-wal"]  # fmt: skip
    finally:
        live.kill()
        live.wait()
        for path in planted:
            path.unlink(missing_ok=True)


def _inner_pid(stdout: str) -> int:
    return int(re.search(r"run pid (\d+)", stdout).group(1))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
