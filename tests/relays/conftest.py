"""The relay tests' emulator, client and signal recorder, and the lifecycle's usual steps."""

import contextlib
import time
from unittest import mock

import pytest

from relays import services, signals, tasks
from relays.edgegap import EdgegapClient
from relays.emulator.server import EmulatorThread
from relays.models import RelaySession
from relays.services import SeatRequest

TOKEN = "lifecycle-test-token"
PUBLIC_URL = "http://lobby.test"


@pytest.fixture(scope="module")
def emulator():
    with EmulatorThread(token=TOKEN, ready_delay=0.05, validation_delay=0.05, seed=7) as running:
        yield running


@pytest.fixture
def edgegap(emulator, settings):
    emulator.reset()
    settings.EDGEGAP_API_URL = emulator.base_url
    settings.EDGEGAP_API_TOKEN = TOKEN
    settings.EDGEGAP_TIMEOUT = 2.0
    settings.PUBLIC_URL = PUBLIC_URL
    with EdgegapClient(emulator.base_url, TOKEN, timeout=2.0) as client:
        yield client


@pytest.fixture
def announced():
    """Every relays signal sent during the test, as (signal name, kwargs)."""
    received = []
    receivers = {}
    for name in ("session_ready", "session_failed", "session_closed", "seat_authorized",
                 "seat_authorization_failed", "seat_revoked"):  # fmt: skip

        def receiver(sender, _name=name, **kwargs):
            kwargs.pop("signal", None)
            received.append((_name, kwargs))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield received
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def open_session(capture, ips, owner="lobby:1"):
    seats = [SeatRequest(holder=f"player:{n}", ip=ip) for n, ip in enumerate(ips)]
    with capture(execute=False) as queued:
        session = services.relay_session_open(owner=owner, seats=seats)
    return session, queued


def make_ready(session, client):
    services.relay_session_create(session_pk=session.pk, client=client)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        session.refresh_from_db()
        if session.status != RelaySession.Status.WAITING:
            return session
        time.sleep(0.05)
        services.relay_session_poll(session_pk=session.pk, client=client)
    pytest.fail(f"session still {session.status}")


RELAY_TASKS = (tasks.session_create, tasks.session_poll, tasks.session_delete,
               tasks.seat_authorize, tasks.seat_revoke)  # fmt: skip


def queued_tasks(callbacks):
    """The names of the tasks that the captured after-commit callbacks would send."""
    sent = []
    with contextlib.ExitStack() as stack:
        for task in RELAY_TASKS:
            record = lambda *args, _name=task.name, **kwargs: sent.append(_name)  # noqa: E731
            stack.enter_context(mock.patch.object(task, "apply_async", record))
        for callback in callbacks:
            callback()
    return sent


def remote_sessions(client):
    """Every session Edgegap lists, by id (the emulator's list is complete when undisturbed)."""
    listing = client.list_sessions()
    assert listing.complete
    return {remote.session_id: remote for remote in listing.sessions}
