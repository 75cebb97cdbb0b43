"""`make run` on a busy port says so as its last line, at once (issue 13), instead of "web
exited with code 3" after a minute of restarts with the cause 40 lines up."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_runstack_on_a_busy_port_says_port_in_use_as_its_last_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
        env.pop("REDIS_URL", None)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "manage.py", "runstack", "--port", str(port)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    assert f"port {port} is in use" in last, last
    assert time.monotonic() - started < 20  # nothing was started, so nothing to wait for
    assert "redis" not in result.stdout  # it stopped before starting any child
