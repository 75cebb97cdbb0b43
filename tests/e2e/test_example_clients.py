"""The example game clients as a new user meets them (issue 13): `docs/examples/two_players.py`
with no service and `python -m relays.play` given a wrong file say what is wrong in one line and
exit 2; and `two_players.py`'s event stream, by socket and by long-poll, lives through a restart of
the web process (a real uvicorn, killed and started again): it reconnects `after` the last event it
handled, so the event written while the service was down arrives, once, in order.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from config.stack import free_port, wait_for_port
from lobby import services as lobby_services
from lobby.models import Player
from tests.live import LIVE_RELAY_ENV, database_url

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "two_players.py"


def _example():
    spec = importlib.util.spec_from_file_location("two_players_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def _one_clear_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_two_players_without_a_service_says_so_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    line = _one_clear_line(_run(str(EXAMPLE), "--url", url))
    assert line == (
        f"two_players: nothing answers at {url} (is it running? `make run`, or give --url)"
    )
    line = _one_clear_line(_run(str(EXAMPLE), "--url", "localhost:8000"))
    assert "--url must start with http(s)://" in line


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("not json", "{path} is not JSON (line 1, column 1: Expecting value)"),
        (b"\xff\xfe", "{path} is not a text file"),
        ("[1, 2]", "{path} is not a relay assignment: expected a JSON object with"),
        ('{"relay": {"ip": "127.0.0.1", "port": 4000}}', "has no 'session_authorization_token'"),
        (
            '{"relay": {"ip": "127.0.0.1", "port": 99999}, "role": "client",'
            ' "session_authorization_token": 1, "user_authorization_token": 2}',
            "port must be 0-65535",
        ),
        (
            '{"relay": {"ip": "127.0.0.1", "port": 4000}, "role": "client",'
            ' "session_authorization_token": -1, "user_authorization_token": 2}',
            "session_token must be an integer from 0 to 4294967295",
        ),
    ],
    ids=["missing", "not-json", "binary", "not-an-object", "no-role", "bad-port", "bad-token"],
)
def test_play_given_a_wrong_file_says_what_is_wrong_in_one_line(tmp_path, content, says):
    path = tmp_path / "host.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    line = _one_clear_line(_run("-m", "relays.play", "--assignment", str(path), "--timeout", "1"))
    assert line.startswith("play: unusable relay assignment: "), line
    assert says.format(path=path) in line, line


class Web:
    """One uvicorn on the test database, on a fixed port, that can be killed and started again."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            **LIVE_RELAY_ENV,
            PYTHONUNBUFFERED="1",
            DATABASE_URL=database_url(connection.settings_dict),
            DEBUG="true",
        )
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.log = open(tmp_path / "web.log", "ab")  # noqa: SIM115 - closed by stop()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--lifespan", "off"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        alive = lambda: self.process.poll() is None  # noqa: E731
        assert wait_for_port("127.0.0.1", self.port, 60, alive=alive), "uvicorn did not start"

    def kill(self) -> None:
        """As a crash or an OOM kill does it: no goodbye to any socket."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def web(transactional_db, tmp_path):
    server = Web(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("via", ["websocket", "poll"])
def test_the_example_client_follows_its_stream_across_a_web_restart(web, via):
    two_players = _example()
    host = two_players.Player(web.url, "Host Hana")
    guest = two_players.Player(web.url, "Guest Gus")
    lobby = host.create_lobby(name="Restart", max_players=2, visibility="private")
    seen: list[tuple[int, str]] = []
    failed: list[BaseException] = []

    def follow():
        stream = host.events_by_websocket if via == "websocket" else host.events_by_polling
        try:
            for event in stream(time.monotonic() + 60):
                seen.append((event["seq"], event["type"]))
                if len(seen) == 3:
                    return
        except BaseException as exc:  # the assertion below shows it
            failed.append(exc)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    _wait(lambda: len(seen) == 1 or failed, "the first event")
    time.sleep(0.5)  # the socket (or long-poll) is open and waiting again

    web.kill()
    # Written while no web process runs: only a reconnect with `after` can bring it.
    lobby_services.lobby_join_by_code(
        code=lobby["join_code"], player=Player.objects.get(pk=guest.id), ip="127.0.0.1"
    )
    time.sleep(1.5)  # the client finds the service gone and retries
    web.start()
    guest.set_ready(lobby["id"])  # pushed live to the new socket (or the next long-poll)

    follower.join(timeout=45)
    assert not failed, failed
    assert not follower.is_alive(), f"stuck after {seen}"
    assert seen == [(1, "lobby.updated"), (2, "lobby.updated"), (3, "lobby.updated")]


def _wait(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)
