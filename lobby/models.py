"""Players, lobbies, memberships and the per-player event stream (design.md §4-5)."""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

# No 0/O, 1/I/L: a code read aloud or typed from a screen is not mistaken. 31^8 ≈ 8.5e11 codes:
# at the join-by-code throttle, guessing any one lobby's code takes longer than lobbies live.
JOIN_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
JOIN_CODE_LENGTH = 8


def new_join_code() -> str:
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))


class Player(models.Model):
    """Someone who plays: a guest, or a Django user. Game clients use its API token."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    display_name = models.CharField(max_length=32)
    is_guest = models.BooleanField(default=False)
    # The last event sequence number handed out: per-player, increasing, gap-free.
    event_seq = models.PositiveBigIntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.display_name


class Lobby(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        ALLOCATING = "allocating"
        READY = "ready"
        FAILED = "failed"
        CLOSED = "closed"

    class Visibility(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"

    # Before start: members may join, leave, ready up; the host may start (again, after failed).
    GATHERING = (State.OPEN, State.FAILED)
    # After start, until the end.
    STARTED = (State.ALLOCATING, State.READY)
    LIVE = (State.OPEN, State.ALLOCATING, State.READY, State.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64)
    host = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="hosted_lobbies")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    visibility = models.CharField(
        max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    max_players = models.PositiveSmallIntegerField()
    # Kept equal to the number of active memberships by the services; capacity is checked on
    # it with a conditional UPDATE, which is atomic on every database.
    member_count = models.PositiveSmallIntegerField(default=0)
    mode = models.CharField(max_length=32, blank=True)
    region = models.CharField(max_length=32, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    join_code = models.CharField(max_length=JOIN_CODE_LENGTH, unique=True, default=new_join_code)
    joinable_after_start = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    relay_session = models.OneToOneField(
        "relays.RelaySession",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="lobby",
    )
    failure_reason = models.CharField(max_length=300, blank=True)
    closed_reason = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "lobbies"
        indexes = [models.Index(fields=["state", "visibility", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(member_count__lte=models.F("max_players")),
                name="lobby_never_over_capacity",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.join_code})"

    @property
    def relay_owner(self) -> str:
        return f"lobby:{self.pk}"


class Membership(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active"
        LEFT = "left"
        KICKED = "kicked"

    lobby = models.ForeignKey(Lobby, on_delete=models.CASCADE, related_name="memberships")
    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="memberships")
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    ready = models.BooleanField(default=False)
    # The player's public IP as seen at its last lobby action: what the relay is asked to allow.
    ip = models.GenericIPAddressField()
    joined_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "pk"]
        constraints = [
            # The last guard of "no player is in two open lobbies at once".
            models.UniqueConstraint(
                fields=["player"], condition=Q(state="active"), name="one_active_lobby_per_player"
            ),
        ]

    def __str__(self):
        return f"{self.player} in {self.lobby_id} ({self.state})"

    @property
    def relay_holder(self) -> str:
        return player_holder(self.player_id)


def player_holder(player_id: int) -> str:
    """How a player is named on its relay seat (relays knows nothing of players)."""
    return f"player:{player_id}"


def holder_player_id(holder: str) -> int | None:
    """The player a relay seat's holder names, or None for another app's holder."""
    prefix, _, raw_id = holder.partition(":")
    return int(raw_id) if prefix == "player" and raw_id.isdigit() else None


class PlayerEvent(models.Model):
    """One row of a player's event stream: written with the change, pushed after commit."""

    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["player", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["player", "seq"], name="event_seq_unique_per_player")
        ]

    def __str__(self):
        return f"{self.player_id}#{self.seq} {self.type}"

    def as_message(self) -> dict:
        return {"seq": self.seq, "type": self.type, "data": self.data}
