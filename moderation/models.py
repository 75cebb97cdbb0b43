"""Lobby chat and moderation (issue 15): messages, mutes, reports, bans and the audit log.

Rules live in `moderation.services`; these rows only hold what happened. docs/moderation.md.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from lobby.models import Lobby, Player

# Limits of the chat, shown in docs/api.md and the OpenAPI schema.
MESSAGE_MAX_LENGTH = 500
NOTE_MAX_LENGTH = 1000
REASON_MAX_LENGTH = 300


class ChatMessage(models.Model):
    """One line of a lobby's chat. Pruned with the events once its lobby is closed."""

    lobby = models.ForeignKey(Lobby, on_delete=models.CASCADE, related_name="chat_messages")
    sender = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="chat_messages")
    # The name at the time of sending: what the other members saw.
    display_name = models.CharField(max_length=32)
    text = models.CharField(max_length=MESSAGE_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["lobby", "-created_at"], name="chat_lobby_recent"),
            models.Index(fields=["sender", "-created_at"], name="chat_sender_recent"),
        ]

    def __str__(self):
        return f"{self.display_name}: {self.text[:40]}"

    def as_data(self) -> dict:
        """The `lobby.message` event's data and the API's message object (one shape)."""
        return {
            "id": self.pk,
            "lobby_id": str(self.lobby_id),
            "sender_id": self.sender_id,
            "display_name": self.display_name,
            "text": self.text,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }


class Mute(models.Model):
    """`muter` no longer sees `muted`'s messages (their own stream and page only)."""

    muter = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="mutes")
    muted = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="muted_by")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["muter", "muted"], name="mute_once_per_pair"),
            models.CheckConstraint(condition=~Q(muter=models.F("muted")), name="mute_not_self"),
        ]

    def __str__(self):
        return f"{self.muter_id} mutes {self.muted_id}"


class Report(models.Model):
    class Reason(models.TextChoices):
        HARASSMENT = "harassment", "Harassment or bullying"
        HATE = "hate", "Hate speech"
        SPAM = "spam", "Spam or flooding"
        CHEATING = "cheating", "Cheating"
        NAME = "inappropriate_name", "Inappropriate name"
        OTHER = "other", "Something else"

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"  # acted upon (a ban)
        DISMISSED = "dismissed"  # looked at, nothing to do

    reporter = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="reports_made")
    reported = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="reports_against")
    lobby = models.ForeignKey(
        Lobby, on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )
    reason = models.CharField(max_length=24, choices=Reason.choices)
    note = models.CharField(max_length=NOTE_MAX_LENGTH, blank=True)
    # The lobby's last messages when the report was made, copied: the evidence outlives the
    # messages' pruning and cannot change afterwards.
    evidence = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)

    class Meta:
        ordering = ["-created_at", "pk"]
        indexes = [models.Index(fields=["status", "created_at"], name="report_queue")]
        constraints = [
            # A player cannot flood the queue about one other player: one open report per pair.
            models.UniqueConstraint(
                fields=["reporter", "reported"],
                condition=Q(status="open"),
                name="one_open_report_per_pair",
            ),
        ]

    def __str__(self):
        return f"report #{self.pk}: {self.reported} ({self.reason}, {self.status})"


class Ban(models.Model):
    """A player may not create or join lobbies, queue or chat while a ban is in force: not
    lifted, and `expires_at` empty (for good) or in the future."""

    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="bans")
    reason = models.CharField(max_length=REASON_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="empty: for good")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    report = models.ForeignKey(
        Report, on_delete=models.SET_NULL, null=True, blank=True, related_name="bans"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    lift_reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True)

    class Meta:
        ordering = ["-created_at", "pk"]
        indexes = [models.Index(fields=["player", "lifted_at", "expires_at"], name="ban_in_force")]

    def __str__(self):
        until = self.expires_at.strftime("%Y-%m-%d %H:%M UTC") if self.expires_at else "for good"
        return f"{self.player} banned {until}"


class AuditEntry(models.Model):
    """One operator action: who, what, to what, when and why. Written by the services (and
    config.audit's signal for other apps' admin actions); never edited."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Kept as text too: the entry still says who after the account is deleted.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=48, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target_repr}"


class PlayerModeration(Player):
    """Players as the moderation admin shows them: one page with reports, bans, messages."""

    class Meta:
        proxy = True
        verbose_name = "player (moderation)"
        verbose_name_plural = "players (moderation)"
