"""Relay sessions and their seats: our record of what we asked Edgegap for (design.md §6).

A row exists before Edgegap is called, so a retried task finds it and never creates a second
session. `owner` is an opaque label the caller chooses (the lobby app uses `lobby:<id>`): relays
knows nothing about lobbies.
"""

import secrets
import uuid

from django.db import models
from django.db.models import Q


def _webhook_key():
    return secrets.token_urlsafe(24)


class RelaySession(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"  # recorded; Edgegap not called yet
        CREATING = "creating", "creating"  # a create call may have reached Edgegap
        WAITING = "waiting", "waiting for ready"  # Edgegap has it; polling until ready
        READY = "ready", "ready"
        FAILED = "failed", "failed"  # never became ready; deleted at Edgegap
        CLOSING = "closing", "closing"  # close requested; the delete has not succeeded yet
        CLOSED = "closed", "closed"

    ACTIVE = (Status.PENDING, Status.CREATING, Status.WAITING, Status.READY)
    # States in which an Edgegap session may exist that we still want.
    LIVE = (Status.CREATING, Status.WAITING, Status.READY)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    session_id = models.CharField(
        "Edgegap session id", max_length=100, unique=True, null=True, blank=True
    )
    # The session authorization token: u32 on the wire, so it needs 64 bits here.
    session_token = models.PositiveBigIntegerField(null=True, blank=True)
    relay_host = models.CharField(max_length=255, blank=True)
    relay_ip = models.GenericIPAddressField(null=True, blank=True)
    server_port = models.PositiveIntegerField(null=True, blank=True)
    client_port = models.PositiveIntegerField(null=True, blank=True)
    # Part of this session's webhook URL: unguessable, and echoed back by Edgegap in the session
    # object, which lets a retried create recognise a session its lost attempt made.
    webhook_key = models.CharField(max_length=64, unique=True, default=_webhook_key, editable=False)
    last_error = models.TextField(blank=True)
    # A create attempt holds this claim so a redelivered task does not race a running one.
    create_lease_until = models.DateTimeField(null=True, blank=True)
    # Whoever drives this session's next step (a queued task, a create attempt, the next poll)
    # holds it until then. The database is the truth: when the lease runs out with the session
    # still short of ready or closed (a killed worker, a lost task, Redis restarted empty), the
    # sweep drives it again; the steps' own claims make a duplicate harmless.
    lease_until = models.DateTimeField(null=True, blank=True)
    # The poll chain's generation: a poll runs only if it claims the generation it was sent with,
    # so a re-driven poll and a late original never make two chains.
    poll_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No `updated_at`: state moves by conditional `QuerySet.update()`, which never touches an
    # auto_now field, so such a column would only pretend to know when a row last changed.
    ready_deadline = models.DateTimeField()
    ready_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self):
        return f"relay {self.session_id or self.pk} ({self.status})"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY


class Seat(models.Model):
    """One player's place in a relay session. Ordinal 0 is the host (the relay's server port)."""

    session = models.ForeignKey(RelaySession, on_delete=models.CASCADE, related_name="seats")
    ordinal = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=100)  # opaque, like owner: the lobby uses `player:<id>`
    ip = models.GenericIPAddressField()
    # The user's own authorization token (u32): handed to this seat's player and nobody else.
    user_token = models.PositiveBigIntegerField(null=True, blank=True)
    # True for the seats sent in the create call; later seats are authorized one by one.
    in_create_call = models.BooleanField(default=False)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set once Edgegap confirmed the revoke (or the session is gone), so it is not sent twice.
    revoke_sent = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    # Set when an authorize-user call is sent: a later attempt first looks at the session for a
    # user Edgegap seated for this IP (the answer may have been lost), instead of asking twice.
    authorize_sent_at = models.DateTimeField(null=True, blank=True)
    # As on the session: who drives this seat's authorize or revoke, until when.
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["session", "ordinal"], name="seat_unique_ordinal"),
            models.UniqueConstraint(
                fields=["session", "holder"],
                condition=Q(revoked=False),
                name="seat_unique_live_holder",
            ),
        ]

    def __str__(self):
        return f"seat {self.ordinal} of {self.session_id}"

    @property
    def role(self) -> str:
        return "server" if self.ordinal == 0 else "client"


class UnownedSession(models.Model):
    """An Edgegap session that no live row of ours owns, as first seen by reconciliation.

    Edgegap reports no creation time, so the grace period before deleting a stranger counts from
    the first sighting: a create whose answer we have not stored yet is not deleted under it.
    """

    session_id = models.CharField(max_length=100, unique=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    # Ours (its webhook URL is under our hook path) or, with the opt-in, another environment's.
    ours = models.BooleanField(default=True)

    def __str__(self):
        return self.session_id
