"""The relay session lifecycle (design.md §6): writes, called by other apps and by relays' tasks.

Public services for other apps: `relay_session_open`, `relay_seat_add`, `relay_seat_revoke`,
`relay_session_close`. The rest run inside Celery tasks and take an `EdgegapClient`.

The database is the truth. State moves by conditional updates (`UPDATE ... WHERE status = ...`),
atomic on PostgreSQL and SQLite alike: whichever of two racing writers loses sees zero rows
updated and backs off. Whoever drives a session's (or seat's) next step holds its `lease_until`;
when a lease runs out short of a settled state (a killed worker, a lost task, a Redis restarted
empty), `relay_sweep` drives the step again, and the claims make a duplicate harmless. Outcomes
are announced through `relays.signals` inside the transaction that records them; Edgegap calls and
task enqueues happen outside transactions or after commit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone

from relays import signals
from relays.edgegap import (
    AnswerLost,
    EdgegapClient,
    EdgegapError,
    EdgegapSession,
    MalformedResponseError,
    PermanentError,
    SessionNotFound,
    TransientError,
    UserMatchError,
    normalize_ip,
)
from relays.models import RelaySession, Seat, UnownedSession

logger = logging.getLogger(__name__)
Status = RelaySession.Status

# Poll delays: the first poll right after create, in the create's own task (Edgegap is often
# ready within a second), then backing off to every few seconds; Edgegap's samples poll every
# 0.2-3 s.
POLL_DELAYS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
# Unseen live sessions probed with GET per reconciliation pass: bounds a pass's calls when the
# list could not be read far.
RECONCILE_MAX_PROBES = 50


class RetryLater(Exception):
    """The work cannot be done now but can be soon (another attempt holds the claim)."""

    def __init__(self, countdown: float):
        super().__init__(f"retry in {countdown:.1f} s")
        self.countdown = countdown


def _create_claim() -> timedelta:
    # An attempt's calls (a list of a few pages, then the create) each end within the timeout;
    # past the claim, the attempt is presumed dead and another may take over.
    return timedelta(seconds=settings.EDGEGAP_TIMEOUT * 4 + 5)


def _lease(countdown: float = 0.0):
    """When a step sent now (to run after `countdown`) is presumed lost if it has not moved on.

    A step is one or two Edgegap calls, each bounded by the timeout, plus time queued in the
    broker; past that, the sweep drives it again.
    """
    seconds = countdown + settings.EDGEGAP_TIMEOUT * 3 + settings.RELAY_LEASE_MARGIN
    return timezone.now() + timedelta(seconds=seconds)


@dataclass(frozen=True)
class SeatRequest:
    """A player to seat: `holder` is an opaque label of the caller's (the lobby: `player:<id>`)."""

    holder: str
    ip: str


def _validated_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise ValueError(f"not an IP address: {ip!r}") from None


def _after_commit(task, *args, countdown: float | None = None) -> None:
    def send():
        if countdown and task.app.conf.task_always_eager:
            # Without a broker (eager mode) the countdown would be ignored and a poll would spin.
            time.sleep(countdown)
        task.apply_async(args=args, countdown=countdown or None)

    transaction.on_commit(send)


# --- Public services -------------------------------------------------------------------------


def relay_session_open(*, owner: str, seats: Sequence[SeatRequest]) -> RelaySession:
    """Record a relay session for `seats` (host first) and create it at Edgegap after commit.

    Returns at once with the session `pending`; the outcome arrives as `session_ready` or
    `session_failed`. Call inside the caller's transaction: if it rolls back, nothing is created.
    """
    from relays import tasks

    if not seats:
        raise ValueError("a relay session needs at least one seat (the host)")
    holders = [seat.holder for seat in seats]
    if len(set(holders)) != len(holders):
        raise ValueError("each holder may have one seat")
    addresses = [_validated_ip(seat.ip) for seat in seats]
    # No savepoint: nothing here fails in a way a caller could carry on from.
    with transaction.atomic(savepoint=False):
        session = RelaySession.objects.create(
            owner=owner,
            ready_deadline=timezone.now() + timedelta(seconds=settings.RELAY_READY_TIMEOUT),
            lease_until=_lease(),
        )
        Seat.objects.bulk_create(
            Seat(session=session, ordinal=ordinal, holder=seat.holder, ip=ip)
            for ordinal, (seat, ip) in enumerate(zip(seats, addresses, strict=True))
        )
        _after_commit(tasks.session_create, str(session.pk))
    return session


def relay_seat_add(*, session: RelaySession, holder: str, ip: str) -> Seat:
    """Add a late seat. It is authorized at Edgegap when the session is (or becomes) ready.

    Raises `ValueError` when the session is over, or the holder already has a live seat.
    """
    from relays import tasks

    ip = _validated_ip(ip)
    with transaction.atomic():
        # Callers serialize seat changes per session (the lobby app holds the session's lock);
        # the unique (session, ordinal) constraint is the last guard.
        session = RelaySession.objects.get(pk=session.pk)
        if session.status not in RelaySession.ACTIVE:
            raise ValueError(f"the relay session is {session.status}")
        if session.seats.filter(holder=holder, revoked=False).exists():
            raise ValueError("this holder already has a seat")
        last = session.seats.aggregate(last=Max("ordinal"))["last"]
        seat = Seat.objects.create(session=session, ordinal=last + 1, holder=holder, ip=ip)
        if session.status == Status.READY:
            Seat.objects.filter(pk=seat.pk).update(lease_until=_lease())
            _after_commit(tasks.seat_authorize, seat.pk)
        # A pending session includes the seat in its create call; a waiting one authorizes it
        # when it becomes ready (see `_mark_ready`).
    return seat


def relay_seat_revoke(*, seat: Seat) -> Seat:
    """Revoke a seat: its token stops working on the relay. Idempotent."""
    from relays import tasks

    with transaction.atomic():
        now = timezone.now()
        revoked = Seat.objects.filter(pk=seat.pk, revoked=False).update(
            revoked=True, revoked_at=now, lease_until=_lease()
        )
        if not revoked:
            return Seat.objects.get(pk=seat.pk)
        seat.refresh_from_db()
        signals.seat_revoked.send(sender=Seat, seat=seat)
        if seat.user_token is not None:
            _after_commit(tasks.seat_revoke, seat.pk)
        # A seat without a token yet is revoked at Edgegap once the session is ready.
    return seat


def relay_session_close(*, session: RelaySession, reason: str = "closed") -> bool:
    """Close a session: announced closed now, deleted at Edgegap after commit (and retried,
    by the task and the sweep, until Edgegap confirms). False if it was already over."""
    from relays import tasks

    with transaction.atomic():
        closed = RelaySession.objects.filter(pk=session.pk, status__in=RelaySession.ACTIVE).update(
            status=Status.CLOSING, last_error=reason, lease_until=_lease()
        )
        if closed:
            # Announced here, not once the delete succeeds: nobody may use a session we are
            # deleting, and a delete that keeps failing must not leave its owner "ready".
            session.refresh_from_db()
            signals.session_closed.send(sender=RelaySession, session=session, reason=reason)
            _after_commit(tasks.session_delete, str(session.pk))
    return bool(closed)


def relay_webhook_url(session: RelaySession) -> str | None:
    if not settings.PUBLIC_URL:
        return None
    return settings.PUBLIC_URL + reverse("relays:webhook", args=[session.webhook_key])


def relay_hook_prefix() -> str | None:
    """The start of every webhook URL we give Edgegap: our mark on the sessions we create."""
    if not settings.PUBLIC_URL:
        return None
    return settings.PUBLIC_URL + reverse("relays:webhook", args=["key"]).removesuffix("key")


def relay_is_ours(remote: EdgegapSession) -> bool:
    """Ours by our own mark: its webhook URL is under our `PUBLIC_URL`'s hook path.

    Edgegap's list covers the whole organisation, so sessions of other environments sharing the
    account (staging, another studio's service) appear in it too; they carry another mark or none.
    """
    prefix = relay_hook_prefix()
    return bool(prefix and remote.webhook_url and remote.webhook_url.startswith(prefix))


# --- Create ----------------------------------------------------------------------------------


def relay_session_create(*, session_pk: uuid.UUID | str, client: EdgegapClient) -> None:
    """Create the session at Edgegap exactly once; safe to run again after any failure.

    Status `pending` means no create call can have reached Edgegap; `creating` means one may have
    (it was sent and its answer was lost, or its worker died). Edgegap has no idempotency key, so
    a `creating` attempt first looks for the session a lost attempt made: by its webhook URL
    (unique per session) or, without one, by its players' IPs among the sessions no row owns.
    Transient errors propagate to the task, which retries; so does `RetryLater` when another
    attempt holds the claim.
    """
    now = timezone.now()
    session = RelaySession.objects.filter(pk=session_pk).first()
    if session is None or session.status not in (Status.PENDING, Status.CREATING):
        return
    if now >= session.ready_deadline:
        relay_session_fail(session_pk=session.pk, client=client, reason=_timeout_reason(session))
        return
    with transaction.atomic():
        claimed = (
            RelaySession.objects.filter(pk=session.pk, status=session.status, session_id=None)
            .filter(Q(create_lease_until=None) | Q(create_lease_until__lt=now))
            .update(create_lease_until=now + _create_claim(), lease_until=_lease())
        )
        if not claimed:
            _raise_if_claimed_elsewhere(session, now)
            return  # the session moved on
        if session.status == Status.PENDING:
            # The seats of this create call, fixed now; a retry after an answer that surely
            # created nothing (429, 5xx) fixes them again.
            session.seats.update(in_create_call=False)
            session.seats.filter(revoked=False).update(in_create_call=True)
    seats = list(session.seats.filter(in_create_call=True).order_by("ordinal"))
    ips = [seat.ip for seat in seats]
    webhook_url = relay_webhook_url(session)
    try:
        remote = None
        if session.status == Status.CREATING:
            remote = _find_lost_create(client, ips=ips, webhook_url=webhook_url)
            if remote is not None:
                logger.info(
                    "relay %s: adopted %s from a lost attempt", session.pk, remote.session_id
                )
        if remote is None:
            remote = _create(session, client, ips=ips, webhook_url=webhook_url)
        if remote is None:
            # Closed while this attempt looked: nothing was made, nothing to store.
            RelaySession.objects.filter(pk=session.pk).update(create_lease_until=None)
            return
    except PermanentError as exc:
        relay_session_fail(session_pk=session.pk, client=client, reason=_edgegap_reason(exc))
        return
    except BaseException:
        # Let the retry claim at once.
        RelaySession.objects.filter(pk=session.pk).update(create_lease_until=None)
        raise
    _store_created(session, remote, client)


def _create(
    session: RelaySession, client: EdgegapClient, *, ips: list[str], webhook_url: str | None
) -> EdgegapSession | None:
    """The create call; None, without calling, when the session was closed meanwhile."""
    # Recorded before sending: if this worker dies mid-call, the next attempt looks first. Only
    # from `pending` or `creating`: a close that came in meanwhile must not be undone.
    marked = RelaySession.objects.filter(
        pk=session.pk, status__in=(Status.PENDING, Status.CREATING)
    ).update(status=Status.CREATING)
    if not marked:
        return None
    try:
        return client.create_session(ips, webhook_url=webhook_url)
    except (AnswerLost, MalformedResponseError):
        raise  # it may exist at Edgegap: stay `creating`, so the retry looks before creating
    except TransientError:
        # Refused for now (429, 5xx, connection refused): nothing was created, no need to look.
        RelaySession.objects.filter(pk=session.pk, status=Status.CREATING).update(
            status=Status.PENDING
        )
        raise


def _raise_if_claimed_elsewhere(session: RelaySession, now) -> None:
    claim = session.create_lease_until
    if session.session_id is None and claim and claim >= now:
        # Another attempt holds the claim (or died holding it): look again when it ends.
        raise RetryLater(max((claim - now).total_seconds(), 0) + 0.5)


def _find_lost_create(
    client: EdgegapClient, *, ips: list[str], webhook_url: str | None
) -> EdgegapSession | None:
    """The session a lost attempt created, if the list shows it; None when there is none.

    Not seeing it in an incomplete list proves nothing: retry later rather than risk a second
    session. (A complete list can still miss it when a page shifted: then the create below makes
    a second one, which carries our mark and no row's id, and reconciliation deletes it.)
    """
    listing = client.list_sessions()
    owned = set(
        RelaySession.objects.filter(
            session_id__in=[remote.session_id for remote in listing.sessions]
        ).values_list("session_id", flat=True)
    )
    strangers = [r for r in listing.sessions if r.session_id not in owned and not r.garbled]
    if webhook_url:
        found = next((r for r in strangers if r.webhook_url == webhook_url), None)
    else:
        wanted = sorted(normalize_ip(ip) for ip in ips)
        found = next(
            (r for r in strangers if sorted(normalize_ip(ip) for ip in r.listed_ips) == wanted),
            None,
        )
    if found is None and not listing.complete:
        raise RetryLater(1.0)
    return found


def _store_created(session: RelaySession, remote: EdgegapSession, client: EdgegapClient) -> None:
    from relays import tasks

    with transaction.atomic():
        stored = RelaySession.objects.filter(pk=session.pk, status=Status.CREATING).update(
            session_id=remote.session_id,
            session_token=remote.authorization_token,
            status=Status.WAITING,
            create_lease_until=None,
            poll_count=0,
            lease_until=_lease(POLL_DELAYS[0]),
        )
    if not stored:
        # Closed while the create was in flight: keep the id (reconciliation sees it is ours and
        # over) and delete what we just made, which nobody wants.
        RelaySession.objects.filter(pk=session.pk, session_id=None).update(
            session_id=remote.session_id
        )
        client.delete_session(remote.session_id)
        logger.info("relay %s: closed while creating; deleted %s", session.pk, remote.session_id)
        return
    session.refresh_from_db()
    if remote.ready or remote.failed:
        _settle(session, remote, client)  # ready at birth: no poll to wait for
    else:
        # The first poll right away, in this task: Edgegap is often ready within moments, and
        # this saves a broker round trip on every allocation. Should it fail now, the poll
        # chain starts as a task.
        try:
            relay_session_poll(session_pk=session.pk, client=client, generation=0)
        except TransientError:
            _after_commit(tasks.session_poll, str(session.pk), 0, countdown=POLL_DELAYS[1])


# --- Poll ------------------------------------------------------------------------------------


def relay_session_poll(
    *, session_pk: uuid.UUID | str, client: EdgegapClient, generation: int | None = None
) -> None:
    """One poll of a waiting session: ready, failed, or poll again later (after commit).

    `generation` is the poll chain's: only the poll that claims it goes on, so a re-driven poll
    and a late original never make two chains. Without it (the webhook's hint) the poll looks
    once and starts no chain of its own.
    """
    from relays import tasks

    session = RelaySession.objects.filter(pk=session_pk, status=Status.WAITING).first()
    if session is None:
        return
    if timezone.now() >= session.ready_deadline:
        relay_session_fail(session_pk=session.pk, client=client, reason=_timeout_reason(session))
        return
    if generation is not None:
        claimed = RelaySession.objects.filter(
            pk=session.pk, status=Status.WAITING, poll_count=generation
        ).update(poll_count=generation + 1, lease_until=_lease())
        if not claimed:
            return  # another poll of this generation ran: its chain goes on
    try:
        remote = client.get_session(session.session_id)
    except SessionNotFound:
        relay_session_fail(
            session_pk=session.pk, client=client, reason="the relay session disappeared"
        )
        return
    except TransientError:
        if generation is not None:
            # Let the retry claim this generation again.
            RelaySession.objects.filter(pk=session.pk, poll_count=generation + 1).update(
                poll_count=generation
            )
        raise
    if remote.ready or remote.failed:
        _settle(session, remote, client)
    elif generation is not None:
        delay = POLL_DELAYS[min(generation + 1, len(POLL_DELAYS) - 1)]
        with transaction.atomic():
            RelaySession.objects.filter(pk=session.pk, poll_count=generation + 1).update(
                lease_until=_lease(delay)
            )
            _after_commit(tasks.session_poll, str(session.pk), generation + 1, countdown=delay)


def _settle(session: RelaySession, remote: EdgegapSession, client: EdgegapClient) -> None:
    if remote.failed:
        reason = f"the relay reported an error: {remote.error}"
        relay_session_fail(session_pk=session.pk, client=client, reason=reason)
    else:
        _mark_ready(session, remote, client)


def _mark_ready(session: RelaySession, remote: EdgegapSession, client: EdgegapClient) -> None:
    from relays import tasks

    seats = list(session.seats.filter(in_create_call=True).order_by("ordinal"))
    try:
        users = remote.users_for([seat.ip for seat in seats])
    except UserMatchError as exc:
        relay_session_fail(
            session_pk=session.pk, client=client, reason=f"the relay's players did not match: {exc}"
        )
        return
    relay = remote.relay
    with transaction.atomic():
        marked = RelaySession.objects.filter(pk=session.pk, status=Status.WAITING).update(
            status=Status.READY,
            session_token=remote.authorization_token,
            relay_host=relay.host,
            relay_ip=relay.ip,
            server_port=relay.server_port,
            client_port=relay.client_port,
            ready_at=timezone.now(),
            lease_until=None,
        )
        if not marked:
            return  # closed or failed meanwhile
        for seat, user in zip(seats, users, strict=True):
            seat.user_token = user.authorization_token
        Seat.objects.bulk_update(seats, ["user_token"])
        session.refresh_from_db()
        signals.session_ready.send(sender=RelaySession, session=session)
        # Seats that joined while the session was being made (to authorize), and seats revoked
        # meanwhile (to revoke): usually none, so one read and nothing else.
        pending = list(
            session.seats.filter(
                Q(in_create_call=False, revoked=False)
                | Q(in_create_call=True, revoked=True, revoke_sent=False)
            ).only("pk", "revoked")
        )
        if pending:
            Seat.objects.filter(pk__in=[seat.pk for seat in pending]).update(lease_until=_lease())
        for seat in pending:
            _after_commit(tasks.seat_revoke if seat.revoked else tasks.seat_authorize, seat.pk)
    logger.info("relay %s: ready as %s", session.pk, session.session_id)


# --- Fail, delete ----------------------------------------------------------------------------


def relay_session_fail(*, session_pk, client: EdgegapClient, reason: str) -> None:
    """Mark a session that never became ready as failed, then delete it at Edgegap.

    If the delete fails, reconciliation deletes it later (it is ours and over).
    """
    with transaction.atomic():
        failed = RelaySession.objects.filter(
            pk=session_pk, status__in=(Status.PENDING, Status.CREATING, Status.WAITING)
        ).update(
            status=Status.FAILED,
            last_error=reason,
            closed_at=timezone.now(),
            create_lease_until=None,
            lease_until=None,
        )
        if not failed:
            return
        session = RelaySession.objects.get(pk=session_pk)
        signals.session_failed.send(sender=RelaySession, session=session, reason=reason)
    logger.warning("relay %s: failed: %s", session.pk, reason)
    if session.session_id:
        try:
            client.delete_session(session.session_id)
        except EdgegapError as exc:
            logger.warning("relay %s: delete failed (%s); reconciliation retries", session.pk, exc)


def relay_session_delete(*, session_pk, client: EdgegapClient) -> None:
    """Delete a closing session at Edgegap (a 404 counts as done), then mark it closed.

    Its close was announced when it became `closing` (`relay_session_close`).
    """
    session = RelaySession.objects.filter(pk=session_pk, status=Status.CLOSING).first()
    if session is None:
        return
    if session.session_id:
        client.delete_session(session.session_id)
    # Without an id, a create may still be in flight: it sees the status and deletes its result.
    RelaySession.objects.filter(pk=session.pk, status=Status.CLOSING).update(
        status=Status.CLOSED, closed_at=timezone.now(), lease_until=None
    )


def _mark_closed(session: RelaySession, *, reason: str) -> bool:
    """An active session Edgegap no longer has (proved by a 404): closed, and announced."""
    with transaction.atomic():
        closed = RelaySession.objects.filter(pk=session.pk, status__in=RelaySession.ACTIVE).update(
            status=Status.CLOSED, closed_at=timezone.now(), last_error=reason, lease_until=None
        )
        if closed:
            session.refresh_from_db()
            signals.session_closed.send(sender=RelaySession, session=session, reason=reason)
    return bool(closed)


# --- Seats -----------------------------------------------------------------------------------


def relay_seat_authorize(*, seat_pk: int, client: EdgegapClient) -> None:
    """Get a late seat its own user token from Edgegap (`authorize-user`), exactly once.

    Idempotent across lost answers: once a call was sent, a later attempt (and a 409, whose cause
    Edgegap does not document) first reads the session and adopts a user Edgegap seated for this
    seat's IP that no other seat holds.
    """
    seat = Seat.objects.select_related("session").filter(pk=seat_pk).first()
    if seat is None or seat.revoked or seat.user_token is not None:
        return
    session = seat.session
    if session.status != Status.READY:
        return  # `_mark_ready` enqueues it when the session is ready
    user_token = None
    if seat.authorize_sent_at is not None:
        user_token = _seated_user_token(seat, client)
    if user_token is None:
        Seat.objects.filter(pk=seat.pk).update(
            authorize_sent_at=timezone.now(), lease_until=_lease()
        )
        try:
            user_token = client.authorize_user(session.session_id, seat.ip).authorization_token
        except PermanentError as exc:
            if exc.status == 409:
                user_token = _seated_user_token(seat, client)
            if user_token is None:
                _fail_seat(seat, _edgegap_reason(exc))
                return
        except (AnswerLost, MalformedResponseError):
            raise  # it may have seated the user: the retry looks first
        except TransientError:
            Seat.objects.filter(pk=seat.pk).update(authorize_sent_at=seat.authorize_sent_at)
            raise
    with transaction.atomic():
        stored = Seat.objects.filter(pk=seat.pk, user_token=None).update(
            user_token=user_token, lease_until=None
        )
        seat.refresh_from_db()
        if stored and not seat.revoked:
            signals.seat_authorized.send(sender=Seat, seat=seat)
    if seat.revoked and not seat.revoke_sent:
        relay_seat_revoke_remote(seat_pk=seat.pk, client=client)  # revoked while authorizing


def _seated_user_token(seat: Seat, client: EdgegapClient) -> int | None:
    """A user token Edgegap holds for this seat's IP that no other seat of the session holds."""
    remote = client.get_session(seat.session.session_id)
    held = set(
        Seat.objects.filter(session_id=seat.session_id, user_token__isnull=False).values_list(
            "user_token", flat=True
        )
    )
    free = [user for user in remote.users_at(seat.ip) if user.authorization_token not in held]
    return free[-1].authorization_token if free else None


def _fail_seat(seat: Seat, reason: str) -> None:
    with transaction.atomic():
        Seat.objects.filter(pk=seat.pk).update(last_error=reason, lease_until=None)
        seat.refresh_from_db()
        signals.seat_authorization_failed.send(sender=Seat, seat=seat, reason=reason)


def relay_seat_revoke_remote(*, seat_pk: int, client: EdgegapClient) -> None:
    """Tell Edgegap that a revoked seat's token no longer works (`revoke-user`)."""
    seat = Seat.objects.select_related("session").filter(pk=seat_pk).first()
    if seat is None or not seat.revoked or seat.revoke_sent or seat.user_token is None:
        return
    session = seat.session
    if session.status in (Status.READY, Status.WAITING) and session.session_id:
        with contextlib.suppress(SessionNotFound):  # the session is gone, and the token with it
            client.revoke_user(session.session_id, seat.user_token)
    Seat.objects.filter(pk=seat.pk).update(revoke_sent=True, lease_until=None)


# --- Sweep: re-drive what was lost -----------------------------------------------------------


@dataclass
class SweepReport:
    redriven: int = 0
    failed_late: int = 0

    def __str__(self):
        return f"redriven {self.redriven}, failed late {self.failed_late}"


def relay_sweep(*, client: EdgegapClient) -> SweepReport:
    """Drive again every step whose lease ran out; fail sessions past their ready deadline.

    Run by beat every few seconds. The database is the truth: a task held by a killed worker, a
    task lost with a Redis that keeps nothing, or an enqueue that never happened all leave a row
    whose lease has expired. Driving it again is safe (every step claims before acting).
    """
    from relays import tasks

    now = timezone.now()
    report = SweepReport()
    expired = Q(lease_until__lt=now) | Q(lease_until=None)
    late = RelaySession.objects.filter(
        status__in=(Status.PENDING, Status.CREATING, Status.WAITING), ready_deadline__lt=now
    )
    for session in late.only("pk", "ready_deadline", "created_at"):
        relay_session_fail(session_pk=session.pk, client=client, reason=_timeout_reason(session))
        report.failed_late += 1

    stalled = RelaySession.objects.filter(
        expired, status__in=(Status.PENDING, Status.CREATING, Status.WAITING, Status.CLOSING)
    ).only("pk", "status", "poll_count")
    for session in stalled:
        with transaction.atomic():
            if (
                not RelaySession.objects.filter(pk=session.pk, status=session.status)
                .filter(expired)
                .update(lease_until=_lease())
            ):
                continue
            if session.status == Status.WAITING:
                _after_commit(tasks.session_poll, str(session.pk), session.poll_count)
            elif session.status == Status.CLOSING:
                _after_commit(tasks.session_delete, str(session.pk))
            else:
                _after_commit(tasks.session_create, str(session.pk))
        report.redriven += 1

    seats = Seat.objects.filter(expired, session__status=Status.READY).filter(
        Q(revoked=False, user_token=None, last_error="")
        | Q(revoked=True, revoke_sent=False, user_token__isnull=False)
    )
    for seat in seats.only("pk", "revoked"):
        with transaction.atomic():
            if not Seat.objects.filter(pk=seat.pk).filter(expired).update(lease_until=_lease()):
                continue
            _after_commit(tasks.seat_revoke if seat.revoked else tasks.seat_authorize, seat.pk)
        report.redriven += 1
    if report.redriven or report.failed_late:
        logger.warning("relay sweep: %s", report)
    return report


# --- Reconcile -------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    seen: int = 0
    complete: bool = True
    deleted_unowned: int = 0
    deleted_finished: int = 0
    probed: int = 0
    marked_closed: int = 0

    def __str__(self):
        return ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in vars(self).items())


def relay_reconcile(
    *, client: EdgegapClient, renew: Callable[[], None] = lambda: None
) -> ReconcileReport:
    """Make Edgegap's sessions and ours agree, acting only on proof. Safe to run any time.

    - A session of ours that is over (closed, failed, closing) is deleted again.
    - A session that carries our mark and that no row owns (a create whose answer was lost, a
      duplicate) is deleted once seen unowned for `RELAY_ORPHAN_GRACE`. Other environments'
      sessions are never touched unless `RELAY_RECONCILE_FOREIGN` opts in.
    - A live session of ours that the list did not show is "gone" only when `GET` answers 404:
      the list is offset-paginated, so absence from it proves nothing.
    - The pass acts on what it saw: a page it could not read hides nothing it then acts on.
    `renew` is called between Edgegap calls (the caller's lock).
    """
    report = ReconcileReport()
    started = timezone.now()
    listing = client.list_sessions()
    report.seen, report.complete = len(listing.sessions), listing.complete
    seen_ids = {remote.session_id for remote in listing.sessions}
    rows = {
        row.session_id: row
        for row in RelaySession.objects.filter(session_id__in=seen_ids).only(
            "pk", "session_id", "status"
        )
    }

    candidates: dict[str, EdgegapSession] = {}
    for remote in listing.sessions:
        row = rows.get(remote.session_id)
        if row is not None:
            if row.status in (Status.CLOSED, Status.FAILED):
                renew()
                client.delete_session(remote.session_id)
                report.deleted_finished += 1
            elif row.status == Status.CLOSING:
                renew()
                relay_session_delete(session_pk=row.pk, client=client)
                report.deleted_finished += 1
        elif not remote.garbled and (relay_is_ours(remote) or settings.RELAY_RECONCILE_FOREIGN):
            candidates[remote.session_id] = remote
    report.deleted_unowned = _delete_orphans(candidates, listing.complete, started, client, renew)

    # Live sessions of ours the list did not show: probe each, oldest first, for proof.
    unseen = (
        RelaySession.objects.filter(status__in=(Status.WAITING, Status.READY))
        .exclude(session_id__in=seen_ids)
        .exclude(session_id=None)
        .order_by("created_at")[:RECONCILE_MAX_PROBES]
    )
    for row in unseen:
        renew()
        report.probed += 1
        try:
            client.get_session(row.session_id)
        except SessionNotFound:
            if _mark_closed(row, reason="the relay session no longer exists at Edgegap"):
                report.marked_closed += 1
        except TransientError as exc:
            logger.info("reconcile: could not probe %s (%s); next pass", row.session_id, exc)
    return report


def _delete_orphans(candidates, complete, started, client, renew) -> int:
    """Delete the unowned sessions first seen at least the grace period before this pass."""
    if complete:
        # Forget sightings the list no longer shows (a shifted one merely restarts its grace).
        UnownedSession.objects.exclude(session_id__in=candidates).delete()
    grace = timedelta(seconds=settings.RELAY_ORPHAN_GRACE)
    deleted = 0
    for session_id, remote in candidates.items():
        ours = relay_is_ours(remote)
        sighting, _ = UnownedSession.objects.get_or_create(
            session_id=session_id, defaults={"ours": ours}
        )
        if started - sighting.first_seen_at < grace or (ours and _adoptable(remote)):
            continue
        # Claimed since the list was read (a create's answer stored late)? Then it is owned.
        if RelaySession.objects.filter(session_id=session_id).exists():
            sighting.delete()
            continue
        renew()
        client.delete_session(session_id)
        sighting.delete()
        deleted += 1
        whose = "our" if ours else "another environment's (RELAY_RECONCILE_FOREIGN)"
        logger.warning("reconcile: deleted %s unowned Edgegap session %s", whose, session_id)
    return deleted


def _adoptable(remote: EdgegapSession) -> bool:
    """Whether the session its mark names may still adopt it: a create whose answer was lost.

    Such a create looks for exactly this session (by its webhook URL) before creating again, so
    deleting it meanwhile would kill the match it is about to become. Once that row has moved on
    (stored another session, failed, closed), it can never adopt it any more: deleting is safe.
    """
    key = remote.webhook_url.removeprefix(relay_hook_prefix())
    return RelaySession.objects.filter(
        webhook_key=key, status__in=(Status.PENDING, Status.CREATING)
    ).exists()


# --- Reasons players read --------------------------------------------------------------------


def _timeout_reason(session: RelaySession) -> str:
    waited = (session.ready_deadline - session.created_at).total_seconds()
    return f"the relay was not ready within {round(waited, 1):g} seconds"


def _edgegap_reason(exc: PermanentError) -> str:
    detail = exc.message or "no detail"
    return f"the relay provider refused the request ({exc.status or 'error'}: {detail})"
