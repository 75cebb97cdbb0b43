"""Queues (profiles), tickets and parties (design.md §4; docs/matchmaking.md)."""

import uuid

from django.db import models
from django.db.models import Q

from lobby.models import JOIN_CODE_LENGTH, Lobby, Player, new_join_code


class Profile(models.Model):
    """A queue players can enter, with its matching rules (edited in the admin)."""

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    rules = models.JSONField(help_text="Gen2-style rules: see docs/matchmaking.md")
    ticket_ttl = models.PositiveIntegerField(
        default=300, help_text="seconds a ticket searches before it expires"
    )
    enabled = models.BooleanField(default=True)
    # Lobbies made from matches carry this mode (for filters and the game client).
    mode = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.title or self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        from matchmaking.rules import RulesError, parse_rules

        try:
            parse_rules(self.rules)
        except RulesError as exc:
            raise ValidationError({"rules": str(exc)}) from None


class Party(models.Model):
    """Players who queue together: never split across matches or teams."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    leader = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="led_parties")
    code = models.CharField(max_length=JOIN_CODE_LENGTH, unique=True, default=new_join_code)
    max_size = models.PositiveSmallIntegerField(default=4)
    disbanded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "parties"

    def __str__(self):
        return f"party {self.code}"


class PartyMember(models.Model):
    party = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="members")
    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="party_memberships")
    ip = models.GenericIPAddressField()
    active = models.BooleanField(default=True)
    # The member's own ticket attributes (PUT .../parties/{id}/attributes), merged into the
    # party's ticket when the leader queues; null: it gave none and adopts the leader's. Kept as
    # given, for any queue: only the names a queue's rules read are used, and checked, there.
    attributes = models.JSONField(null=True, blank=True)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["joined_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["player"], condition=Q(active=True), name="one_active_party_per_player"
            )
        ]

    def __str__(self):
        return f"{self.player} in {self.party}"


class Ticket(models.Model):
    class Status(models.TextChoices):
        SEARCHING = "searching"
        MATCHED = "matched"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="tickets")
    # Who queued: a solo player, or a party's leader on behalf of the whole party.
    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="tickets")
    party = models.ForeignKey(
        Party, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SEARCHING)
    attributes = models.JSONField(default=dict)
    # The players this ticket seats, with their IPs for the relay: [{"player_id", "ip"}].
    members = models.JSONField(default=list)
    lobby = models.ForeignKey(
        Lobby, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    team = models.PositiveSmallIntegerField(null=True, blank=True)
    # Why it is still searching, as the matcher last saw it (shown in GET ticket and the admin).
    expansion_step = models.PositiveSmallIntegerField(default=0)
    blocked_by = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["profile", "status", "created_at"])]
        constraints = [
            # One search at a time per player, whatever the queue: the last guard when one
            # player's requests for two queues race (a second POST for the same queue finds
            # this ticket; one for another queue is 409 already_queued).
            models.UniqueConstraint(
                fields=["player"],
                condition=Q(status="searching"),
                name="one_searching_ticket_per_player",
            )
        ]

    def __str__(self):
        return f"ticket {self.pk} ({self.status})"

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def player_ids(self) -> list[int]:
        return [member["player_id"] for member in self.members]
