"""The relay lifecycle services, step by step, against the emulator over real HTTP.

Tasks are not run here: each test captures what a service queues after commit and drives the next
step itself, so every intermediate state can be checked. tests/e2e drives the same lifecycle
through a real Celery worker.
"""

import time
from unittest import mock

import pytest

from relays import services, tasks
from relays.edgegap import EdgegapClient
from relays.models import RelaySession, Seat
from tests.relays.conftest import make_ready as _make_ready
from tests.relays.conftest import open_session as _open
from tests.relays.conftest import queued_tasks as _queued_tasks
from tests.relays.conftest import remote_sessions as _remote_sessions

pytestmark = pytest.mark.django_db
Status = RelaySession.Status


def test_open_records_the_session_before_edgegap_is_called(
    edgegap, django_capture_on_commit_callbacks
):
    session, queued = _open(django_capture_on_commit_callbacks, ["203.0.113.1", "198.51.100.2"])
    assert session.status == Status.PENDING
    assert [(s.ordinal, s.role, s.ip) for s in session.seats.all()] == [
        (0, "server", "203.0.113.1"),
        (1, "client", "198.51.100.2"),
    ]
    assert _remote_sessions(edgegap) == {}
    assert _queued_tasks(queued) == ["relays.session_create"]


def test_session_becomes_ready_with_each_seats_own_token(
    edgegap, django_capture_on_commit_callbacks, announced
):
    ips = ["203.0.113.1", "198.51.100.2", "192.0.2.3"]
    session, _ = _open(django_capture_on_commit_callbacks, ips)
    session = _make_ready(session, edgegap)

    assert session.status == Status.READY
    remote = _remote_sessions(edgegap)[session.session_id]
    assert session.session_token == remote.authorization_token
    assert (session.relay_ip, session.server_port, session.client_port) == (
        remote.relay.ip,
        remote.relay.server_port,
        remote.relay.client_port,
    )
    token_by_ip = {user.ip_address: user.authorization_token for user in remote.users}
    assert {seat.ip: seat.user_token for seat in session.seats.all()} == token_by_ip
    assert [name for name, _ in announced] == ["session_ready"]


def test_players_behind_one_nat_each_get_a_distinct_token(
    edgegap, django_capture_on_commit_callbacks
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.9"] * 3)
    session = _make_ready(session, edgegap)
    remote = _remote_sessions(edgegap)[session.session_id]
    tokens = [seat.user_token for seat in session.seats.order_by("ordinal")]
    # Shared IPs fall back to order: seat n gets the n-th user Edgegap listed for that IP.
    assert tokens == [user.authorization_token for user in remote.users]
    assert len(set(tokens)) == 3


@pytest.mark.parametrize("public_url", ["http://lobby.test", None])
def test_retried_create_adopts_the_session_a_lost_attempt_made(
    edgegap, django_capture_on_commit_callbacks, settings, public_url
):
    settings.PUBLIC_URL = public_url
    ips = ["203.0.113.1", "198.51.100.2"]
    session, _ = _open(django_capture_on_commit_callbacks, ips)
    # A first attempt claimed the row and reached Edgegap, then its worker died before storing
    # the answer; its lease has run out.
    RelaySession.objects.filter(pk=session.pk).update(status=Status.CREATING)
    Seat.objects.filter(session=session).update(in_create_call=True)
    lost = edgegap.create_session(ips, webhook_url=services.relay_webhook_url(session))
    if public_url is None:
        time.sleep(
            0.1
        )  # without our mark only IPs identify it: Edgegap may list them only once ready
    stranger = edgegap.create_session(["192.0.2.77"])  # someone else's, must be left alone

    services.relay_session_create(session_pk=session.pk, client=edgegap)

    session.refresh_from_db()
    assert session.session_id == lost.session_id
    assert set(_remote_sessions(edgegap)) == {lost.session_id, stranger.session_id}


def test_a_create_attempt_does_not_run_while_another_holds_the_claim(
    edgegap, django_capture_on_commit_callbacks
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    from django.utils import timezone

    RelaySession.objects.filter(pk=session.pk).update(
        status=Status.CREATING, create_lease_until=timezone.now() + services._create_claim()
    )
    with pytest.raises(services.RetryLater):
        services.relay_session_create(session_pk=session.pk, client=edgegap)
    assert _remote_sessions(edgegap) == {}


def test_refused_create_fails_the_session_with_a_reason(
    emulator, edgegap, django_capture_on_commit_callbacks, announced
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    with EdgegapClient(emulator.base_url, "wrong-token", timeout=2.0) as refused:
        services.relay_session_create(session_pk=session.pk, client=refused)
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert "refused" in session.last_error and "403" in session.last_error
    assert [name for name, _ in announced] == ["session_failed"]


def test_relay_error_fails_the_session_and_deletes_it(
    emulator, edgegap, django_capture_on_commit_callbacks, announced
):
    emulator.config(error_state="no relay in region")
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1", "198.51.100.2"])
    session = _make_ready(session, edgegap)
    assert session.status == Status.FAILED
    assert "no relay in region" in session.last_error
    assert _remote_sessions(edgegap) == {}
    assert announced[0][0] == "session_failed"
    assert announced[0][1]["reason"] == session.last_error


def test_never_ready_session_fails_at_the_deadline_and_is_deleted(
    emulator, edgegap, django_capture_on_commit_callbacks, settings
):
    emulator.config(never_ready=True)
    settings.RELAY_READY_TIMEOUT = 0.3
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    services.relay_session_create(session_pk=session.pk, client=edgegap)
    assert len(_remote_sessions(edgegap)) == 1
    time.sleep(0.35)
    services.relay_session_poll(session_pk=session.pk, client=edgegap)
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert "not ready within 0.3 seconds" in session.last_error
    assert _remote_sessions(edgegap) == {}


def test_close_deletes_at_edgegap_and_announces(
    edgegap, django_capture_on_commit_callbacks, announced
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    session = _make_ready(session, edgegap)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.relay_session_close(session=session, reason="lobby ended")
    assert _queued_tasks(queued) == ["relays.session_delete"]
    assert not services.relay_session_close(session=session)  # already closing: once only
    services.relay_session_delete(session_pk=session.pk, client=edgegap)
    session.refresh_from_db()
    assert session.status == Status.CLOSED
    assert _remote_sessions(edgegap) == {}
    assert [name for name, _ in announced] == ["session_ready", "session_closed"]
    # Deleting again (a redelivered task) is harmless.
    services.relay_session_delete(session_pk=session.pk, client=edgegap)


def test_a_session_closed_while_its_create_was_in_flight_is_deleted(
    edgegap, django_capture_on_commit_callbacks
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    RelaySession.objects.filter(pk=session.pk).update(status=Status.CREATING)
    with django_capture_on_commit_callbacks(execute=True):
        services.relay_session_close(session=session)
    services.relay_session_delete(session_pk=session.pk, client=edgegap)
    # The in-flight create now returns and tries to store its answer.
    remote = edgegap.create_session(["203.0.113.1"])
    services._store_created(session, remote, edgegap)
    session.refresh_from_db()
    assert session.status == Status.CLOSED
    assert session.session_id == remote.session_id
    assert _remote_sessions(edgegap) == {}


def test_late_seat_is_authorized_with_its_own_token(
    edgegap, django_capture_on_commit_callbacks, announced
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1", "198.51.100.2"])
    session = _make_ready(session, edgegap)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        seat = services.relay_seat_add(session=session, holder="player:late", ip="192.0.2.50")
    assert _queued_tasks(queued) == ["relays.seat_authorize"]
    services.relay_seat_authorize(seat_pk=seat.pk, client=edgegap)
    seat.refresh_from_db()
    remote = _remote_sessions(edgegap)[session.session_id]
    late = [user for user in remote.users if user.ip_address == "192.0.2.50"]
    assert seat.ordinal == 2 and seat.role == "client"
    assert seat.user_token == late[0].authorization_token
    assert announced[-1] == ("seat_authorized", {"seat": seat})


def test_seat_joining_while_the_session_is_made_is_authorized_once_ready(
    edgegap, django_capture_on_commit_callbacks
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    services.relay_session_create(session_pk=session.pk, client=edgegap)
    seat = services.relay_seat_add(session=session, holder="player:2", ip="198.51.100.2")
    time.sleep(0.1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.relay_session_poll(session_pk=session.pk, client=edgegap)
    assert "relays.seat_authorize" in _queued_tasks(queued)
    services.relay_seat_authorize(seat_pk=seat.pk, client=edgegap)
    seat.refresh_from_db()
    assert seat.user_token is not None


def test_revoked_seat_is_revoked_at_edgegap_once(
    edgegap, django_capture_on_commit_callbacks, announced
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1", "198.51.100.2"])
    session = _make_ready(session, edgegap)
    client_seat = session.seats.get(ordinal=1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.relay_seat_revoke(seat=client_seat)
        services.relay_seat_revoke(seat=client_seat)  # a second request changes nothing
    assert _queued_tasks(queued) == ["relays.seat_revoke"]
    services.relay_seat_revoke_remote(seat_pk=client_seat.pk, client=edgegap)
    client_seat.refresh_from_db()
    assert client_seat.revoked and client_seat.revoke_sent
    assert [name for name, _ in announced] == ["session_ready", "seat_revoked"]


def test_seat_refuses_bad_input(edgegap, django_capture_on_commit_callbacks):
    with pytest.raises(ValueError, match="not an IP"):
        _open(django_capture_on_commit_callbacks, ["not-an-ip"])
    with pytest.raises(ValueError, match="at least one seat"):
        services.relay_session_open(owner="lobby:1", seats=[])
    assert not RelaySession.objects.exists()


def test_reconcile_deletes_sessions_of_ours_that_are_over(
    edgegap, django_capture_on_commit_callbacks
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    session = _make_ready(session, edgegap)
    # The delete after close failed (Edgegap was down), so the row is closed but the session not.
    RelaySession.objects.filter(pk=session.pk).update(status=Status.CLOSED)
    report = services.relay_reconcile(client=edgegap)
    assert report.deleted_finished == 1
    assert _remote_sessions(edgegap) == {}


def test_webhook_is_a_hint_that_triggers_a_poll(
    client, edgegap, django_capture_on_commit_callbacks
):
    session, _ = _open(django_capture_on_commit_callbacks, ["203.0.113.1"])
    services.relay_session_create(session_pk=session.pk, client=edgegap)
    session.refresh_from_db()
    url = services.relay_webhook_url(session).removeprefix("http://lobby.test")
    polled = []
    with mock.patch.object(tasks.session_poll, "delay", polled.append):
        assert client.post(url, data="{not", content_type="application/json").status_code == 204
        assert client.post(url).status_code == 204  # within a second: no second poll
    assert polled == [str(session.pk)]
    assert client.post("/hooks/relays/not-a-key").status_code == 404
    assert client.get(url).status_code == 405
