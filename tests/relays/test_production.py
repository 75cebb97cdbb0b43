"""Issue 9's findings, each pinned on the emulator's awkward knobs, step by step.

Each test reproduces what the real Edgegap (or a real fault) does and that broke a live match or
lost an allocation: pages that shift under deletes, other environments' sessions in the same
list, a page that fails or vanishes, answers that are lost after the work was done, 409s, killed
workers. The services run in-process against the emulator over real HTTP; tests/e2e and the fault
suite (tests/faults) drive the same through real workers.
"""

import contextlib
import time

import pytest
from django.utils import timezone

from config.locks import LockLost, exclusive
from relays import services, tasks
from relays.edgegap import AnswerLost, EdgegapClient, TransientError
from relays.edgegap.client import SESSIONS_PATH
from relays.models import RelaySession, Seat, UnownedSession
from tests.relays.conftest import (
    PUBLIC_URL,
    TOKEN,
    make_ready,
    open_session,
    queued_tasks,
    remote_sessions,
)

pytestmark = pytest.mark.django_db
Status = RelaySession.Status


class WatchedClient(EdgegapClient):
    """The production client, recording its calls and running `before(method, path)` before each.

    The hook is how a test makes something happen *between* two calls of one walk (a delete
    elsewhere, a fault on page 2 only), which no knob can time.
    """

    def __init__(self, base_url, *, before=None):
        super().__init__(base_url, TOKEN, timeout=2.0)
        self.calls: list[tuple[str, str]] = []
        self.before = before

    def _send(self, method, path, body, **kwargs):
        self.calls.append((method, path))
        if self.before:
            self.before(method, path)
        return super()._send(method, path, body, **kwargs)

    def listed(self) -> int:
        return sum(1 for m, p in self.calls if m == "GET" and p.startswith(SESSIONS_PATH + "?"))


def _open(ips, owner="lobby:1"):
    return open_session(lambda **_: contextlib.nullcontext([]), ips, owner)[0]


def _page(path: str) -> int | None:
    return int(path.split("page=")[1]) if "page=" in path else None


@pytest.fixture
def no_tasks(django_capture_on_commit_callbacks):
    """Nothing queued after commit runs: each test drives the steps itself."""
    with django_capture_on_commit_callbacks(execute=False) as queued:
        yield queued


# --- 1. Reconciliation acts only on proof ----------------------------------------------------


def test_a_live_session_shifted_onto_a_page_already_read_is_not_closed(emulator, edgegap, no_tasks):
    emulator.config(page_size=3)
    strangers = [edgegap.create_session([f"192.0.2.{n}"]) for n in range(3)]
    live = make_ready(_open(["203.0.113.1"]), edgegap)

    def delete_elsewhere(method, path):
        if _page(path) == 2:  # page 1 was [s0, s1, s2]; now `live` moves onto it, unread
            edgegap.delete_session(strangers[0].session_id)

    report = services.relay_reconcile(
        client=WatchedClient(emulator.base_url, before=delete_elsewhere)
    )

    assert report.complete
    assert report.probed == 1 and report.marked_closed == 0
    live.refresh_from_db()
    assert live.status == Status.READY
    assert live.session_id in remote_sessions(edgegap)


def test_a_session_gone_at_edgegap_is_closed_on_a_404_only(emulator, edgegap, announced, no_tasks):
    live = make_ready(_open(["203.0.113.1"]), edgegap)
    gone = make_ready(_open(["203.0.113.2"], "lobby:2"), edgegap)
    edgegap.delete_session(gone.session_id)  # deleted behind our back

    report = services.relay_reconcile(client=edgegap)

    assert (report.probed, report.marked_closed) == (1, 1)
    gone.refresh_from_db()
    live.refresh_from_db()
    assert (gone.status, live.status) == (Status.CLOSED, Status.READY)
    assert ("session_closed", {"session": gone, "reason": gone.last_error}) in announced


def test_a_session_stored_while_a_pass_lists_is_left_alone(emulator, edgegap, no_tasks):
    emulator.config(page_size=1)
    edgegap.create_session(["192.0.2.1"])
    edgegap.create_session(["192.0.2.2"])
    stored_meanwhile = []

    def store_a_session(method, path):
        if _page(path) == 2 and not stored_meanwhile:
            session = _open(["203.0.113.7"])
            stored_meanwhile.append(make_ready(session, edgegap))

    services.relay_reconcile(client=WatchedClient(emulator.base_url, before=store_a_session))

    session = stored_meanwhile[0]
    session.refresh_from_db()
    assert session.status == Status.READY
    assert session.session_id in remote_sessions(edgegap)


# --- 2. Ownership by our own mark ------------------------------------------------------------


def test_other_environments_sessions_are_never_deleted_without_the_opt_in(
    emulator, edgegap, settings
):
    settings.RELAY_ORPHAN_GRACE = 0.2
    staging = edgegap.create_session(
        ["192.0.2.1"], webhook_url="https://staging.example/hooks/relays/abc"
    )
    unmarked = edgegap.create_session(["192.0.2.2"])
    orphan = edgegap.create_session(["192.0.2.3"], webhook_url=f"{PUBLIC_URL}/hooks/relays/lost")

    assert services.relay_reconcile(client=edgegap).deleted_unowned == 0  # within the grace
    time.sleep(0.25)
    assert services.relay_reconcile(client=edgegap).deleted_unowned == 1
    assert set(remote_sessions(edgegap)) == {staging.session_id, unmarked.session_id}
    for _ in range(3):
        services.relay_reconcile(client=edgegap)
    assert set(remote_sessions(edgegap)) == {staging.session_id, unmarked.session_id}
    assert orphan.session_id not in remote_sessions(edgegap)

    settings.RELAY_RECONCILE_FOREIGN = True
    services.relay_reconcile(client=edgegap)
    time.sleep(0.25)
    assert services.relay_reconcile(client=edgegap).deleted_unowned == 2
    assert remote_sessions(edgegap) == {}


def test_a_duplicate_of_ours_is_an_orphan_even_though_its_mark_names_a_live_row(
    emulator, edgegap, settings, no_tasks
):
    # A lost create whose retry could not see the first session (a shifted page) made two.
    settings.RELAY_ORPHAN_GRACE = 0.1
    session = make_ready(_open(["203.0.113.1"]), edgegap)
    duplicate = edgegap.create_session(
        ["203.0.113.1"], webhook_url=services.relay_webhook_url(session)
    )
    services.relay_reconcile(client=edgegap)
    time.sleep(0.15)
    services.relay_reconcile(client=edgegap)
    assert set(remote_sessions(edgegap)) == {session.session_id}
    assert duplicate.session_id not in remote_sessions(edgegap)


def test_a_session_a_lost_create_may_still_adopt_is_not_deleted_under_it(
    emulator, edgegap, settings, no_tasks
):
    # The create's answer was lost; its retries are slow to find it (pages failing), and the
    # grace runs out meanwhile. Deleting it then would kill the match it is about to become.
    settings.RELAY_ORPHAN_GRACE = 0.1
    session = _open(["203.0.113.1"])
    RelaySession.objects.filter(pk=session.pk).update(status=Status.CREATING)
    Seat.objects.filter(session=session).update(in_create_call=True)
    made = edgegap.create_session(["203.0.113.1"], webhook_url=services.relay_webhook_url(session))
    services.relay_reconcile(client=edgegap)
    time.sleep(0.15)
    assert services.relay_reconcile(client=edgegap).deleted_unowned == 0
    services.relay_session_create(session_pk=session.pk, client=edgegap)  # the retry adopts it
    session.refresh_from_db()
    assert session.session_id == made.session_id

    # Once its row has moved on (it failed), nothing can adopt it any more: it goes.
    other = _open(["203.0.113.2"], "lobby:2")
    made = edgegap.create_session(["203.0.113.2"], webhook_url=services.relay_webhook_url(other))
    RelaySession.objects.filter(pk=other.pk).update(status=Status.FAILED)
    services.relay_reconcile(client=edgegap)
    time.sleep(0.15)
    assert services.relay_reconcile(client=edgegap).deleted_unowned == 1
    assert made.session_id not in remote_sessions(edgegap)


# --- 3. An incomplete list ---------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["429", "503", "vanished"])
def test_a_page_that_fails_ends_the_walk_and_the_pass_acts_on_what_it_saw(
    emulator, edgegap, no_tasks, fault
):
    emulator.config(page_size=1)
    over = make_ready(_open(["203.0.113.1"]), edgegap)
    live = make_ready(_open(["203.0.113.2"], "lobby:2"), edgegap)
    RelaySession.objects.filter(pk=over.pk).update(status=Status.CLOSED)

    def fail_page_2(method, path):
        on_page_2 = _page(path) == 2
        if fault == "vanished":
            emulator.config(page_past_end="404")
            if on_page_2:  # the list shrinks under the walk: page 2 is now past its end
                edgegap.delete_session(live.session_id)
        else:
            emulator.config(rate_429=1.0 if on_page_2 and fault == "429" else 0.0)
            emulator.config(rate_5xx=1.0 if on_page_2 and fault == "503" else 0.0)

    report = services.relay_reconcile(client=WatchedClient(emulator.base_url, before=fail_page_2))

    assert report.complete is False
    assert report.deleted_finished == 1  # seen on page 1: acted on
    live.refresh_from_db()
    # Unseen: probed with GET, closed only on a 404 (the "vanished" case deleted it for real).
    assert live.status == (Status.CLOSED if fault == "vanished" else Status.READY)


# --- 4. Creates list only when an answer was really lost ---------------------------------------


def test_a_create_refused_for_now_is_retried_without_listing(emulator, no_tasks, edgegap):
    watched = WatchedClient(emulator.base_url)
    session = _open(["203.0.113.1"])
    emulator.config(rate_429=1.0)
    with pytest.raises(TransientError):
        services.relay_session_create(session_pk=session.pk, client=watched)
    session.refresh_from_db()
    assert session.status == Status.PENDING  # a 429 created nothing
    emulator.config(rate_429=0.0)
    services.relay_session_create(session_pk=session.pk, client=watched)
    assert watched.listed() == 0 and ("GET", SESSIONS_PATH) not in watched.calls
    session.refresh_from_db()
    assert session.status in (Status.WAITING, Status.READY)  # ready if its first poll saw it
    assert list(remote_sessions(edgegap)) == [session.session_id]


def test_a_lost_create_answer_is_found_instead_of_creating_twice(emulator, no_tasks, edgegap):
    session = _open(["203.0.113.1"])
    emulator.config(lose_rate=1.0)
    with pytest.raises(AnswerLost):
        services.relay_session_create(session_pk=session.pk, client=edgegap)
    session.refresh_from_db()
    assert session.status == Status.CREATING and session.session_id is None
    emulator.config(lose_rate=0.0)
    services.relay_session_create(session_pk=session.pk, client=edgegap)
    session.refresh_from_db()
    assert session.status in (Status.WAITING, Status.READY)  # ready already, if adopted late
    assert list(remote_sessions(edgegap)) == [session.session_id]


def test_a_lost_create_whose_list_is_cut_short_waits_rather_than_duplicating(
    emulator, no_tasks, edgegap
):
    emulator.config(page_size=1)
    for n in range(3):
        edgegap.create_session([f"192.0.2.{n}"])  # the lost one lands on a later page
    session = _open(["203.0.113.1"])
    emulator.config(lose_rate=1.0)
    with pytest.raises(AnswerLost):
        services.relay_session_create(session_pk=session.pk, client=edgegap)
    emulator.config(lose_rate=0.0)

    def page_2_vanishes(method, path):
        emulator.config(rate_5xx=1.0 if _page(path) == 2 else 0.0)

    with pytest.raises(services.RetryLater):
        services.relay_session_create(
            session_pk=session.pk, client=WatchedClient(emulator.base_url, before=page_2_vanishes)
        )
    emulator.config(rate_5xx=0.0)
    services.relay_session_create(session_pk=session.pk, client=edgegap)
    session.refresh_from_db()
    assert session.status in (Status.WAITING, Status.READY)  # ready already, if adopted late
    assert len(remote_sessions(edgegap)) == 4  # three strangers and ours, once


def test_a_session_closed_while_a_lost_create_is_looked_for_is_not_created_again(
    emulator, no_tasks, edgegap
):
    session = _open(["203.0.113.1"])
    RelaySession.objects.filter(pk=session.pk).update(status=Status.CREATING)
    Seat.objects.filter(session=session).update(in_create_call=True)

    def close_meanwhile(method, path):
        if method == "GET":  # the lost create's search: the lobby ends right then
            services.relay_session_close(session=session, reason="lobby ended")

    watched = WatchedClient(emulator.base_url, before=close_meanwhile)
    services.relay_session_create(session_pk=session.pk, client=watched)

    assert ("POST", SESSIONS_PATH) not in watched.calls
    session.refresh_from_db()
    assert session.status == Status.CLOSING  # its delete task finishes it
    assert remote_sessions(edgegap) == {}


# --- 6. Authorize-user is idempotent ---------------------------------------------------------


def _ready_with_late_seat(edgegap, ip):
    session = make_ready(_open(["8.8.8.8"]), edgegap)
    return services.relay_seat_add(session=session, holder="player:late", ip=ip)


def test_authorize_after_a_lost_answer_adopts_the_user_edgegap_seated(
    emulator, edgegap, no_tasks, announced
):
    seat = _ready_with_late_seat(edgegap, "9.9.9.9")
    emulator.config(lose_rate=1.0)
    with pytest.raises(AnswerLost):
        services.relay_seat_authorize(seat_pk=seat.pk, client=edgegap)
    emulator.config(lose_rate=0.0)
    services.relay_seat_authorize(seat_pk=seat.pk, client=edgegap)

    seat.refresh_from_db()
    seated = remote_sessions(edgegap)[seat.session.session_id].users_at("9.9.9.9")
    assert [user.authorization_token for user in seated] == [seat.user_token]
    assert announced[-1] == ("seat_authorized", {"seat": seat})


def test_authorize_answered_409_adopts_the_user_edgegap_seated(emulator, edgegap, no_tasks):
    emulator.config(strict=True)  # 409 for an IP already seated
    seat = _ready_with_late_seat(edgegap, "9.9.9.9")
    # Our first call seated it, but neither its answer nor our record of sending it survived.
    seated = edgegap.authorize_user(seat.session.session_id, "9.9.9.9")
    services.relay_seat_authorize(seat_pk=seat.pk, client=edgegap)
    seat.refresh_from_db()
    assert seat.user_token == seated.authorization_token
    assert seat.last_error == ""


def test_a_409_with_nothing_to_adopt_fails_the_seat_with_a_reason(emulator, edgegap, no_tasks):
    emulator.config(strict=True)
    seat = _ready_with_late_seat(edgegap, "8.8.8.8")  # the host's IP: held by the host's seat
    services.relay_seat_authorize(seat_pk=seat.pk, client=edgegap)
    seat.refresh_from_db()
    assert seat.user_token is None
    assert "409" in seat.last_error


# --- 7. Nothing is lost with a killed worker ---------------------------------------------------


def _expire_leases(session):
    past = timezone.now() - timezone.timedelta(seconds=1)
    RelaySession.objects.filter(pk=session.pk).update(lease_until=past)


def test_the_sweep_redrives_a_create_whose_task_was_lost(
    emulator, edgegap, django_capture_on_commit_callbacks
):
    session, _ = open_session(django_capture_on_commit_callbacks, ["203.0.113.1"])  # task lost
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.relay_sweep(client=edgegap).redriven == 0  # its lease still runs
    assert queued_tasks(queued) == []
    _expire_leases(session)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.relay_sweep(client=edgegap).redriven == 1
        assert services.relay_sweep(client=edgegap).redriven == 0  # leased again
    assert queued_tasks(queued) == ["relays.session_create"]


def test_the_sweep_redrives_a_create_whose_worker_died_mid_call(emulator, edgegap, no_tasks):
    session = _open(["203.0.113.1"])
    # The dead attempt: it claimed, marked `creating`, and Edgegap made the session.
    RelaySession.objects.filter(pk=session.pk).update(
        status=Status.CREATING, create_lease_until=timezone.now()
    )
    Seat.objects.filter(session=session).update(in_create_call=True)
    made = edgegap.create_session(["203.0.113.1"], webhook_url=services.relay_webhook_url(session))
    _expire_leases(session)
    services.relay_sweep(client=edgegap)
    services.relay_session_create(session_pk=session.pk, client=edgegap)  # what the sweep sent
    session.refresh_from_db()
    assert session.session_id == made.session_id
    assert list(remote_sessions(edgegap)) == [made.session_id]


def test_a_redriven_poll_and_a_late_original_make_one_chain(
    emulator, edgegap, django_capture_on_commit_callbacks
):
    emulator.config(never_ready=True)
    session, _ = open_session(django_capture_on_commit_callbacks, ["203.0.113.1"])
    with django_capture_on_commit_callbacks(execute=False):
        services.relay_session_create(session_pk=session.pk, client=edgegap)
    session.refresh_from_db()
    assert session.poll_count == 1  # the create polled once itself, and sent generation 1
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.relay_session_poll(session_pk=session.pk, client=edgegap, generation=1)
        services.relay_session_poll(session_pk=session.pk, client=edgegap, generation=1)  # dup
    assert queued_tasks(queued) == ["relays.session_poll"]  # one next poll, not two chains


def test_a_lock_dies_with_its_holder_and_only_its_owner_releases_it(settings):
    with exclusive("test:lock", ttl=0.3) as first:
        assert first is not None
        with exclusive("test:lock", ttl=0.3) as second:
            assert second is None
        time.sleep(0.4)  # the holder stopped renewing: it is dead as far as anyone knows
        with exclusive("test:lock", ttl=5) as third:
            assert third is not None
            with pytest.raises(LockLost):
                first.renew()
            first.release()  # not the owner any more: no effect
            with exclusive("test:lock", ttl=5) as fourth:
                assert fourth is None
    with exclusive("test:lock", ttl=5) as fifth:
        assert fifth is not None


def test_reconciliation_is_not_switched_off_by_a_pass_that_died(emulator, edgegap, settings):
    settings.EDGEGAP_TIMEOUT = 0.1  # the reconcile lock's TTL is three timeouts
    from config.locks import Lock, _get_backend

    dead = Lock("relays:reconcile", 0.3, _get_backend())
    assert dead.acquire()  # a worker took the lock and was killed
    time.sleep(0.35)
    tasks.reconcile.apply()
    assert dead.acquire()  # the pass ran and released its lock


def test_unowned_sighting_keeps_the_owner_kind(emulator, edgegap, settings):
    settings.RELAY_RECONCILE_FOREIGN = True
    edgegap.create_session(["192.0.2.1"], webhook_url="https://staging.example/hooks/relays/x")
    services.relay_reconcile(client=edgegap)
    assert UnownedSession.objects.get().ours is False
