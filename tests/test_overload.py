"""Overload answers 503 + Retry-After, never 500 (issues 10 and 12).

The admission gate (config/admission.py) keeps a crowd out of the database pool; when the pool
still runs dry, the error becomes the same 503 with one summarised log line.
"""

import asyncio
import json
import logging
import sqlite3
import time
import uuid

import pytest
from django.db import OperationalError, connection
from psycopg_pool import PoolTimeout
from rest_framework.test import APIClient

from config import admission
from lobby import services
from tests.crowd import crowd
from tests.live import start_live_stack
from tests.lobby.factories import PlayerFactory


@pytest.fixture(autouse=True)
def _fresh_overload_log(monkeypatch):
    # The log is summarised per interval: a line logged by an earlier test must not hide ours.
    monkeypatch.setattr(admission.overload_log, "_last", {})
    monkeypatch.setattr(admission.overload_log, "_pending", {})


def _pool_ran_dry():
    """What Django raises when psycopg's pool has no connection for the request in time."""
    try:
        raise PoolTimeout("couldn't get a connection after 2.00 sec")
    except PoolTimeout as exc:
        raise OperationalError("couldn't get a connection after 2.00 sec") from exc


def _client_for(player, **extra):
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Token {player.user.auth_token.key}")
    return client


def _assert_overloaded(response):
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(admission.RETRY_AFTER)
    error = json.loads(response.content)["error"]
    assert error["code"] == "overloaded"
    assert error["message"]
    assert error["retry_after"] == admission.RETRY_AFTER


def _overload_records(caplog):
    return [r for r in caplog.records if r.name == "config.admission"]


# --- Pool exhaustion that escapes the gate: on both stacks ----------------------------------


def _bare_pool_timeout():
    raise PoolTimeout("couldn't get a connection after 2.00 sec")


def _sqlite_busy():
    # As Django raises it: its own class, the driver's error as the cause.
    raise OperationalError("database is locked") from sqlite3.OperationalError("database is locked")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "failure",
    [_pool_ran_dry, _bare_pool_timeout, _sqlite_busy],
    ids=["django-wrapped PoolTimeout", "bare PoolTimeout", "sqlite busy"],
)
def test_pool_exhaustion_in_an_api_view_answers_503_with_one_log_line(failure, monkeypatch, caplog):
    player = PlayerFactory()

    def start(**kwargs):
        failure()

    monkeypatch.setattr(services, "lobby_start", start)
    client = _client_for(player, raise_request_exception=False)
    with caplog.at_level(logging.WARNING):
        responses = [client.post(f"/api/v1/lobbies/{uuid.uuid4()}/start") for _ in range(20)]
    for response in responses:
        _assert_overloaded(response)
    records = _overload_records(caplog)
    assert len(records) == 1, "a crowd of failures is one summarised line"
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "503" in records[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no 500 logged"


def test_sqlite_busy_timeout_is_overload_too():
    wrapped = OperationalError("database is locked")
    wrapped.__cause__ = sqlite3.OperationalError("database is locked")
    assert admission.is_pool_exhausted(wrapped)
    assert not admission.is_pool_exhausted(OperationalError("no such table: lobby_lobby"))
    assert not admission.is_pool_exhausted(ValueError("database is locked"))


@pytest.mark.django_db
def test_pool_exhaustion_in_the_async_long_poll_answers_503(monkeypatch, caplog):
    # The events long-poll is a plain async view: the middleware, not DRF, maps it.
    player = PlayerFactory()

    def authenticate(request, session_user):
        _pool_ran_dry()

    monkeypatch.setattr("lobby.event_api._authenticate", authenticate)
    client = _client_for(player, raise_request_exception=False)
    with caplog.at_level(logging.WARNING):
        response = client.get("/api/v1/players/me/events?after=0")
    _assert_overloaded(response)
    assert len(_overload_records(caplog)) == 1


@pytest.mark.django_db
def test_other_database_errors_are_still_server_errors(monkeypatch):
    # The mapping is for a crowd only; a bug must stay visible as a 500.
    player = PlayerFactory()

    def start(**kwargs):
        raise OperationalError("no such column: lobby_lobby.nope")

    monkeypatch.setattr(services, "lobby_start", start)
    response = _client_for(player, raise_request_exception=False).post(
        f"/api/v1/lobbies/{uuid.uuid4()}/start"
    )
    assert response.status_code == 500


# --- The gate itself, on a stand-in app ------------------------------------------------------


class _SlowApp:
    """An ASGI app that holds each request for `hold` seconds and records how many overlap."""

    def __init__(self, hold):
        self.hold, self.inside, self.most, self.served = hold, 0, 0, []

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.inside += 1
        self.most = max(self.most, self.inside)
        await asyncio.sleep(self.hold)
        self.inside -= 1
        self.served.append((scope["path"], body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def _call(app, path, body=b"x", *, leave_after=None, scope_type="http"):
    """One request through `app`; returns (status, headers, body), or None if it left first."""
    sent = []
    left = asyncio.Event()

    async def receive():
        if not receive.given:
            receive.given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    receive.given = False

    async def send(message):
        sent.append(message)

    if leave_after is not None:
        asyncio.get_running_loop().call_later(leave_after, left.set)
    await app({"type": scope_type, "path": path, "method": "POST", "headers": []}, receive, send)
    if not sent:
        return None
    headers = dict(sent[0].get("headers", []))
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_gate_runs_at_most_its_limit_and_refuses_the_rest_after_the_queue_wait():
    inner = _SlowApp(hold=0.4)
    gate = admission.AdmissionGate(inner, limit=3, queue_timeout=0.6)

    async def scenario():
        return await asyncio.gather(
            *(_call(gate, "/api/v1/lobbies", body=str(n).encode()) for n in range(9))
        )

    started = time.monotonic()
    answers = asyncio.run(scenario())
    assert time.monotonic() - started < 2
    assert inner.most == 3
    # 3 run at once for 0.4 s: the first six fit in the 0.6 s wait, the last three do not.
    assert [status for status, _, _ in answers] == [200] * 6 + [503] * 3
    for _, headers, body in answers[6:]:
        assert headers[b"retry-after"] == str(admission.RETRY_AFTER).encode()
        assert headers[b"content-type"] == b"application/json"
        assert json.loads(body)["error"]["code"] == "overloaded"
    # Admitted in arrival order, each with its own body.
    assert [body for _, body in inner.served] == [str(n).encode() for n in range(6)]
    assert gate.active == 0 and gate.waiting == 0


def test_a_client_that_leaves_while_queued_never_reaches_the_app():
    inner = _SlowApp(hold=0.3)
    gate = admission.AdmissionGate(inner, limit=1, queue_timeout=5)

    async def scenario():
        return await asyncio.gather(
            _call(gate, "/api/v1/lobbies", body=b"first"),
            _call(gate, "/api/v1/lobbies", body=b"gone", leave_after=0.1),
            _call(gate, "/api/v1/lobbies", body=b"third"),
        )

    first, gone, third = asyncio.run(scenario())
    assert first[0] == 200 and third[0] == 200 and gone is None
    assert [body for _, body in inner.served] == [b"first", b"third"]


def test_probes_long_polls_static_and_sockets_pass_a_full_gate():
    inner = _SlowApp(hold=0.5)
    gate = admission.AdmissionGate(inner, limit=1, queue_timeout=0.05, exempt_prefixes=["/static/"])

    async def scenario():
        blocker = asyncio.ensure_future(_call(gate, "/api/v1/lobbies"))
        await asyncio.sleep(0.05)  # the only slot is taken
        *passing, refused = await asyncio.gather(
            _call(gate, "/healthz"),
            _call(gate, "/readyz"),
            _call(gate, "/metrics"),
            _call(gate, "/static/lobby/room.js"),
            _call(gate, "/api/v1/players/me/events"),  # an async view
            _call(gate, "/ws/v1/events", scope_type="websocket"),
            _call(gate, "/api/v1/players/me"),  # a sync view: queued, then refused
        )
        await blocker
        return passing, refused

    passing, refused = asyncio.run(scenario())
    assert [answer[0] for answer in passing] == [200] * 6
    assert refused[0] == 503


# --- Settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_POOL_SIZE", "ten"),
        ("DATABASE_POOL_SIZE", "2.5"),
        ("DATABASE_POOL_TIMEOUT", "0"),
        ("REQUEST_QUEUE_TIMEOUT", "soon"),
    ],
)
def test_malformed_pool_setting_stops_startup_naming_it(name, value):
    from tests.test_settings import _check

    result = _check(**{name: value})
    assert result.returncode != 0
    assert f"{name}=" in result.stderr


# --- A real crowd against a real uvicorn (PostgreSQL) ---------------------------------------

CROWD = 200


@pytest.fixture(scope="module")
def small_pool_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """uvicorn with a pool of 4 (an admission limit of 2) and short waits, so 200 requests are
    a crowd on any machine."""
    from django.conf import settings

    from tests.live import database_url

    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            pytest.skip("the pool and its exhaustion exist on PostgreSQL only")
        db_url = database_url(connection.settings_dict)
    stack = start_live_stack(
        db_url=db_url,
        redis_url=settings.REDIS_URL,
        workdir=tmp_path_factory.mktemp("overload"),
        extra_env={
            "DATABASE_POOL_SIZE": "4",
            "DATABASE_POOL_TIMEOUT": "1",
            "REQUEST_QUEUE_TIMEOUT": "1",
            "THROTTLE_PLAYER": "100000/min",
            "THROTTLE_IP": "100000/min",
        },
    )
    yield stack
    stack.stop()


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_a_crowd_of_joins_gets_no_server_error(small_pool_stack):
    live = small_pool_stack
    host = PlayerFactory()
    lobby = services.lobby_create(player=host, ip="203.0.113.1", name="crowded", max_players=64)
    players = [PlayerFactory() for _ in range(CROWD)]
    join = f"{live.base_url}/api/v1/lobbies/{lobby.pk}/join"
    calls = [
        (join, "POST", {"Authorization": f"Token {p.user.auth_token.key}"}, None) for p in players
    ]
    calls += [
        (
            f"{live.base_url}/api/v1/players/me",
            "GET",
            {"Authorization": f"Token {p.user.auth_token.key}"},
            None,
        )
        for p in players[:50]
    ]

    async def burst():
        crowd_task = asyncio.ensure_future(crowd(calls, timeout=60))
        await asyncio.sleep(0.2)
        probe = await crowd([(f"{live.base_url}/healthz", "GET", {}, None)], timeout=10)
        return await crowd_task, probe[0]

    answers, probe = asyncio.run(burst())

    statuses = [answer.status for answer in answers]
    assert 500 not in statuses, live.log_tail()
    assert set(statuses) <= {200, 409, 503}, sorted(set(statuses))
    for answer in answers:
        if answer.status == 503:
            assert answer.headers["retry-after"] == str(admission.RETRY_AFTER)
            assert answer.json()["error"]["code"] == "overloaded"
    joined = statuses[:CROWD].count(200)
    assert 0 < joined <= 63
    assert lobby.memberships.count() == 1 + joined, "every 200 is a member, nobody else"
    # The liveness probe is not queued behind the crowd.
    assert probe.status == 200 and probe.seconds < 1.0
    # The gate kept the crowd out of the pool: it never ran dry, nothing was a traceback.
    web_log = [line for line in live.log_path.read_text().splitlines() if "web |" in line]
    assert not [line for line in web_log if "couldn't get a connection" in line]
    assert not [line for line in web_log if "Traceback" in line]


@pytest.mark.django_db
def test_metrics_report_the_queue_and_the_refusals(client, monkeypatch):
    player = PlayerFactory()
    monkeypatch.setattr(services, "lobby_start", lambda **kwargs: _pool_ran_dry())
    before = admission.overload_log.totals.get("database", 0)
    _client_for(player).post(f"/api/v1/lobbies/{uuid.uuid4()}/start")
    text = client.get("/metrics").content.decode()
    assert "relaylobby_requests_active " in text and "relaylobby_requests_queued " in text
    assert f'relaylobby_overloaded_total{{reason="database"}} {before + 1}' in text
