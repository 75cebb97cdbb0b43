"""The relay session lifecycle (design.md §6): writes, called by other apps and by relays' tasks.

Public services for other apps: `relay_session_open`, `relay_seat_add`, `relay_seat_revoke`,
`relay_session_close`. The rest run inside Celery tasks and take an `EdgegapClient`.

State moves by conditional updates (`UPDATE ... WHERE status = ...`), which are atomic on
PostgreSQL and SQLite alike: whichever of two racing writers loses sees zero rows updated and
backs off. Outcomes are announced through `relays.signals` inside the transaction that records
them; Edgegap calls and task enqueues happen outside transactions or after commit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.urls import reverse
from django.utils import timezone

from relays import signals
from relays.client import (
    EdgegapClient,
    EdgegapError,
    PermanentError,
    SessionNotFound,
    UserMatchError,
    normalize_ip,
)
from relays.client import (
    RelaySession as RemoteSession,
)
from relays.models import RelaySession, Seat, UnownedSession

logger = logging.getLogger(__name__)
Status = RelaySession.Status


class RetryLater(Exception):
    """The work cannot be done now but can be soon (another attempt holds the claim)."""

    def __init__(self, countdown: float):
        super().__init__(f"retry in {countdown:.1f} s")
        self.countdown = countdown


def _create_lease() -> timedelta:
    # An attempt's calls (a list of a few pages, then the create) each end within the timeout;
    # past the lease, the attempt is presumed dead and a redelivered task may take over.
    return timedelta(seconds=settings.EDGEGAP_TIMEOUT * 4 + 5)


# Poll delays: quick at first (the emulator and Edgegap are often ready within a second or two),
# then every few seconds; Edgegap's samples poll every 0.2-3 s.
POLL_DELAYS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


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
        task.apply_async(args=args, countdown=countdown)

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
    with transaction.atomic():
        session = RelaySession.objects.create(
            owner=owner,
            ready_deadline=timezone.now() + timedelta(seconds=settings.RELAY_READY_TIMEOUT),
        )
        Seat.objects.bulk_create(
            Seat(session=session, ordinal=ordinal, holder=seat.holder, ip=_validated_ip(seat.ip))
            for ordinal, seat in enumerate(seats)
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
            _after_commit(tasks.seat_authorize, seat.pk)
        # A pending session includes the seat in its create call; a waiting one authorizes it
        # when it becomes ready (see `_mark_ready`).
    return seat


def relay_seat_revoke(*, seat: Seat) -> Seat:
    """Revoke a seat: its token stops working on the relay. Idempotent."""
    from relays import tasks

    with transaction.atomic():
        now = timezone.now()
        if not Seat.objects.filter(pk=seat.pk, revoked=False).update(revoked=True, revoked_at=now):
            return Seat.objects.get(pk=seat.pk)
        seat.refresh_from_db()
        signals.seat_revoked.send(sender=Seat, seat=seat)
        if seat.user_token is not None:
            _after_commit(tasks.seat_revoke, seat.pk)
        # A seat without a token yet is revoked at Edgegap once the session is ready.
    return seat


def relay_session_close(*, session: RelaySession, reason: str = "closed") -> bool:
    """Close a session: it is deleted at Edgegap after commit. False if it was already over."""
    from relays import tasks

    with transaction.atomic():
        closed = RelaySession.objects.filter(pk=session.pk, status__in=RelaySession.ACTIVE).update(
            status=Status.CLOSING, last_error=reason
        )
        if closed:
            _after_commit(tasks.session_delete, str(session.pk))
    return bool(closed)


def relay_webhook_url(session: RelaySession) -> str | None:
    if not settings.PUBLIC_URL:
        return None
    return settings.PUBLIC_URL + reverse("relays:webhook", args=[session.webhook_key])


# --- Create ----------------------------------------------------------------------------------


def relay_session_create(*, session_pk: uuid.UUID | str, client: EdgegapClient) -> None:
    """Create the session at Edgegap exactly once; safe to run again after any failure.

    A create attempt first claims the row (`creating`, with a lease). If a previous attempt got
    that far, it may have created a session whose answer was lost (a timeout, a killed worker):
    Edgegap has no idempotency key, so the session is looked for among Edgegap's sessions that
    we do not own, by its webhook URL (unique per session) or, without one, by its players' IPs.
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
            .update(status=Status.CREATING, create_lease_until=now + _create_lease())
        )
        if not claimed:
            if session.session_id is None and session.create_lease_until:
                # Another attempt holds the claim (or died holding it): look again when it ends.
                remaining = (session.create_lease_until - now).total_seconds()
                raise RetryLater(max(remaining, 0) + 0.5)
            return  # the session moved on
        if session.status == Status.PENDING:
            # The seats in this create call: fixed now, so every later attempt sends the same.
            session.seats.filter(revoked=False).update(in_create_call=True)
    seats = list(session.seats.filter(in_create_call=True).order_by("ordinal"))
    ips = [seat.ip for seat in seats]
    webhook_url = relay_webhook_url(session)

    remote = None
    try:
        if session.status == Status.CREATING:
            remote = _find_lost_create(client, ips=ips, webhook_url=webhook_url)
            if remote is not None:
                logger.info(
                    "relay %s: adopted %s from an earlier attempt", session.pk, remote.session_id
                )
        if remote is None:
            remote = client.create_session(ips, webhook_url=webhook_url)
    except PermanentError as exc:
        relay_session_fail(session_pk=session.pk, client=client, reason=_edgegap_reason(exc))
        return
    except Exception:
        # Let the retry claim at once; the status stays `creating`, so it searches first.
        RelaySession.objects.filter(pk=session.pk).update(create_lease_until=None)
        raise
    _store_created(session, remote, client)


def _find_lost_create(client, *, ips, webhook_url) -> RemoteSession | None:
    remote_sessions = client.list_sessions()
    owned = set(
        RelaySession.objects.filter(
            session_id__in=[remote.session_id for remote in remote_sessions]
        ).values_list("session_id", flat=True)
    )
    strangers = [remote for remote in remote_sessions if remote.session_id not in owned]
    if webhook_url:
        return next((remote for remote in strangers if remote.webhook_url == webhook_url), None)
    wanted = sorted(normalize_ip(ip) for ip in ips)
    for remote in strangers:
        if sorted(normalize_ip(user.ip_address) for user in remote.users) == wanted:
            return remote
    return None


def _store_created(session: RelaySession, remote: RemoteSession, client: EdgegapClient) -> None:
    from relays import tasks

    with transaction.atomic():
        stored = RelaySession.objects.filter(pk=session.pk, status=Status.CREATING).update(
            session_id=remote.session_id,
            session_token=remote.authorization_token,
            status=Status.WAITING,
            create_lease_until=None,
        )
        if stored:
            _after_commit(tasks.session_poll, str(session.pk), countdown=POLL_DELAYS[0])
    if not stored:
        # Closed while the create was in flight: keep the id (reconciliation sees it is ours and
        # over) and delete what we just made, which nobody wants.
        RelaySession.objects.filter(pk=session.pk, session_id=None).update(
            session_id=remote.session_id
        )
        client.delete_session(remote.session_id)
        logger.info("relay %s: closed while creating; deleted %s", session.pk, remote.session_id)


# --- Poll ------------------------------------------------------------------------------------


def relay_session_poll(*, session_pk: uuid.UUID | str, client: EdgegapClient) -> None:
    """One poll of a waiting session: ready, failed, or poll again later (after commit)."""
    from relays import tasks

    session = RelaySession.objects.filter(pk=session_pk, status=Status.WAITING).first()
    if session is None:
        return
    if timezone.now() >= session.ready_deadline:
        relay_session_fail(session_pk=session.pk, client=client, reason=_timeout_reason(session))
        return
    try:
        remote = client.get_session(session.session_id)
    except SessionNotFound:
        relay_session_fail(
            session_pk=session.pk, client=client, reason="the relay session disappeared"
        )
        return
    if remote.failed:
        reason = f"the relay reported an error: {remote.error}"
        relay_session_fail(session_pk=session.pk, client=client, reason=reason)
    elif remote.ready and remote.relay is not None:
        _mark_ready(session, remote, client)
    else:
        RelaySession.objects.filter(pk=session.pk).update(poll_count=F("poll_count") + 1)
        delay = POLL_DELAYS[min(session.poll_count + 1, len(POLL_DELAYS) - 1)]
        _after_commit(tasks.session_poll, str(session.pk), countdown=delay)


def _mark_ready(session: RelaySession, remote: RemoteSession, client: EdgegapClient) -> None:
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
        )
        if not marked:
            return  # closed or failed meanwhile
        for seat, user in zip(seats, users, strict=True):
            seat.user_token = user.authorization_token
        Seat.objects.bulk_update(seats, ["user_token"])
        session.refresh_from_db()
        signals.session_ready.send(sender=RelaySession, session=session)
        # Seats that joined while the session was being made, and seats revoked meanwhile.
        for seat in session.seats.filter(in_create_call=False, revoked=False):
            _after_commit(tasks.seat_authorize, seat.pk)
        for seat in session.seats.filter(in_create_call=True, revoked=True, revoke_sent=False):
            _after_commit(tasks.seat_revoke, seat.pk)
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
    """Delete a closing session at Edgegap (a 404 counts as done), then mark it closed."""
    session = RelaySession.objects.filter(pk=session_pk, status=Status.CLOSING).first()
    if session is None:
        return
    if session.session_id:
        client.delete_session(session.session_id)
    # Without an id, a create may still be in flight: it sees the status and deletes its result.
    _mark_closed(session, reason=session.last_error or "closed")


def _mark_closed(session: RelaySession, *, reason: str) -> bool:
    with transaction.atomic():
        closed = RelaySession.objects.filter(
            pk=session.pk, status__in=(*RelaySession.ACTIVE, Status.CLOSING)
        ).update(status=Status.CLOSED, closed_at=timezone.now(), last_error=reason)
        if closed:
            session.refresh_from_db()
            signals.session_closed.send(sender=RelaySession, session=session, reason=reason)
    return bool(closed)


# --- Seats -----------------------------------------------------------------------------------


def relay_seat_authorize(*, seat_pk: int, client: EdgegapClient) -> None:
    """Get a late seat its own user token from Edgegap (`authorize-user`)."""
    seat = Seat.objects.select_related("session").filter(pk=seat_pk).first()
    if seat is None or seat.revoked or seat.user_token is not None:
        return
    if seat.session.status != Status.READY:
        return  # `_mark_ready` enqueues it when the session is ready
    try:
        user = client.authorize_user(seat.session.session_id, seat.ip)
    except PermanentError as exc:
        reason = _edgegap_reason(exc)
        with transaction.atomic():
            Seat.objects.filter(pk=seat.pk).update(last_error=reason)
            seat.refresh_from_db()
            signals.seat_authorization_failed.send(sender=Seat, seat=seat, reason=reason)
        return
    with transaction.atomic():
        stored = Seat.objects.filter(pk=seat.pk, user_token=None).update(
            user_token=user.authorization_token
        )
        seat.refresh_from_db()
        if stored and not seat.revoked:
            signals.seat_authorized.send(sender=Seat, seat=seat)
    if seat.revoked and not seat.revoke_sent:
        relay_seat_revoke_remote(seat_pk=seat.pk, client=client)  # revoked while authorizing


def relay_seat_revoke_remote(*, seat_pk: int, client: EdgegapClient) -> None:
    """Tell Edgegap that a revoked seat's token no longer works (`revoke-user`)."""
    seat = Seat.objects.select_related("session").filter(pk=seat_pk).first()
    if seat is None or not seat.revoked or seat.revoke_sent or seat.user_token is None:
        return
    session = seat.session
    if session.status in (Status.READY, Status.WAITING) and session.session_id:
        with contextlib.suppress(SessionNotFound):  # the session is gone, and the token with it
            client.revoke_user(session.session_id, seat.user_token)
    Seat.objects.filter(pk=seat.pk).update(revoke_sent=True)


# --- Reconcile -------------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    seen: int = 0
    deleted_unowned: int = 0
    deleted_finished: int = 0
    marked_closed: int = 0
    failed_stuck: int = 0

    def __str__(self):
        return ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in vars(self).items())


def relay_reconcile(*, client: EdgegapClient) -> ReconcileReport:
    """Make Edgegap's sessions and ours agree. Run by beat every minute; safe to run any time.

    - Edgegap sessions that no session of ours owns are deleted once unowned for the grace period.
    - Edgegap sessions of ours that are over (closed, failed) are deleted again.
    - Our waiting or ready sessions that Edgegap no longer has are marked closed.
    - Our sessions stuck before creation past their deadline are marked failed.
    """
    report = ReconcileReport()
    listed_at = timezone.now()
    remote_sessions = client.list_sessions()
    report.seen = len(remote_sessions)
    remote_ids = {remote.session_id for remote in remote_sessions}
    ours = {
        row.session_id: row
        for row in RelaySession.objects.filter(session_id__in=remote_ids).only(
            "pk", "session_id", "status"
        )
    }

    for session_id in remote_ids:
        row = ours.get(session_id)
        if row is None:
            continue
        if row.status in (Status.CLOSED, Status.FAILED):
            client.delete_session(session_id)
            report.deleted_finished += 1
        elif row.status == Status.CLOSING:
            relay_session_delete(session_pk=row.pk, client=client)
            report.deleted_finished += 1

    strangers = remote_ids - ours.keys()
    UnownedSession.objects.exclude(session_id__in=strangers).delete()
    grace = timedelta(seconds=settings.RELAY_ORPHAN_GRACE)
    for session_id in strangers:
        sighting, _ = UnownedSession.objects.get_or_create(session_id=session_id)
        # Claimed since the list was read? Then it is ours after all.
        if RelaySession.objects.filter(session_id=session_id).exists():
            continue
        if listed_at - sighting.first_seen_at >= grace:
            client.delete_session(session_id)
            sighting.delete()
            report.deleted_unowned += 1
            logger.warning("reconcile: deleted unowned Edgegap session %s", session_id)

    # Ours that Edgegap no longer has; rows changed after the list was read are left alone.
    gone = RelaySession.objects.filter(
        status__in=(Status.WAITING, Status.READY), updated_at__lt=listed_at
    ).exclude(session_id__in=remote_ids)
    for row in gone:
        if _mark_closed(row, reason="the relay session no longer exists at Edgegap"):
            report.marked_closed += 1

    # A create task lost for good (retries exhausted, broker flushed): fail it after the deadline.
    stuck = RelaySession.objects.filter(
        status__in=(Status.PENDING, Status.CREATING, Status.WAITING),
        ready_deadline__lt=listed_at - _create_lease(),
    )
    for row in stuck:
        relay_session_fail(session_pk=row.pk, client=client, reason=_timeout_reason(row))
        report.failed_stuck += 1
    return report


# --- Reasons players read --------------------------------------------------------------------


def _timeout_reason(session: RelaySession) -> str:
    waited = (session.ready_deadline - session.created_at).total_seconds()
    return f"the relay was not ready within {round(waited, 1):g} seconds"


def _edgegap_reason(exc: PermanentError) -> str:
    detail = exc.message or "no detail"
    return f"the relay provider refused the request ({exc.status or 'error'}: {detail})"
