"""Leaderboards, ratings and their history, match results and the members' reports.

See docs/ratings.md for the rules these rows carry out.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from lobby.models import Lobby, Player
from ratings import skill


class Leaderboard(models.Model):
    """A ladder of ratings. A queue rates on the leaderboard of its own name (made on first use);
    a hand-made lobby rates only on one an operator opened to hand-made lobbies, because its
    players choose their opponents (friends, second accounts) and could farm rating."""

    name = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=100, blank=True)
    open_to_hand_made_lobbies = models.BooleanField(
        default=False,
        help_text="lobbies made by hand may rate here (metadata leaderboard=<name>)",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.title or self.name


class Rating(models.Model):
    """A player's skill on one leaderboard (OpenSkill mu and sigma; `ordinal` is displayed)."""

    leaderboard = models.ForeignKey(Leaderboard, on_delete=models.CASCADE, related_name="ratings")
    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="ratings")
    mu = models.FloatField(default=skill.MU)
    sigma = models.FloatField(default=skill.SIGMA)
    # Stored (not computed) so a leaderboard page is one indexed range scan.
    ordinal = models.FloatField(default=skill.NEW.ordinal)
    games = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["leaderboard", "player"], name="one_rating_per_player_and_leaderboard"
            )
        ]
        indexes = [models.Index(fields=["leaderboard", "-ordinal", "id"])]

    def __str__(self):
        return f"{self.player} on {self.leaderboard.name}: {self.ordinal:.0f}"

    def set_skill(self, value: skill.Skill) -> None:
        self.mu, self.sigma, self.ordinal = value.mu, value.sigma, value.ordinal


class MatchResult(models.Model):
    """The outcome of one started lobby, from its members' reports."""

    class State(models.TextChoices):
        PENDING = "pending"  # reports agree so far, not enough of them yet
        CONFIRMED = "confirmed"  # it stands: rated
        DISPUTED = "disputed"  # reports disagree: an operator decides
        VOID = "void"  # no majority in the window, or voided by an operator: nothing rated

    # One result per lobby: the last guard of "a lobby is rated at most once".
    lobby = models.OneToOneField(Lobby, on_delete=models.CASCADE, related_name="result")
    leaderboard = models.ForeignKey(Leaderboard, on_delete=models.PROTECT, related_name="results")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    # Who played, fixed at the first report: [player id, ...].
    roster = models.JSONField(default=list)
    # The teams the server formed (a matched lobby), [[player id, ...], ...]; null when reports
    # name the teams (a hand-made lobby).
    teams = models.JSONField(null=True, blank=True)
    # The standing placements once confirmed, in the reports' canonical form.
    placements = models.JSONField(null=True, blank=True)
    quality = models.FloatField(
        null=True,
        blank=True,
        help_text="predicted match quality, 0..1 (ratings.skill.match_quality)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decide_by = models.DateTimeField(db_index=True, help_text="when a majority may stand")
    decided_at = models.DateTimeField(null=True, blank=True)
    # Set exactly once, by the conditional update that claims the rating.
    rated_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    resolution_note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "pk"]
        indexes = [models.Index(fields=["state", "decide_by"])]

    def __str__(self):
        return f"result of {self.lobby_id} ({self.state})"


class ResultReport(models.Model):
    """One member's report: placements in canonical form (see services.placements_canonical)."""

    result = models.ForeignKey(MatchResult, on_delete=models.CASCADE, related_name="reports")
    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="result_reports")
    placements = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["result", "player"], name="one_report_per_member")
        ]

    def __str__(self):
        return f"{self.player} on {self.result_id}"


class RatingChange(models.Model):
    """History: every change of a rating, by a match or by an operator (audited)."""

    class Reason(models.TextChoices):
        MATCH = "match"
        ADJUST = "adjust"
        RESET = "reset"

    rating = models.ForeignKey(Rating, on_delete=models.CASCADE, related_name="history")
    result = models.ForeignKey(
        MatchResult, on_delete=models.PROTECT, null=True, blank=True, related_name="changes"
    )
    reason = models.CharField(max_length=8, choices=Reason.choices)
    mu_before = models.FloatField()
    sigma_before = models.FloatField()
    mu_after = models.FloatField()
    sigma_after = models.FloatField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # A match changes each rating once: the guard under the result's rated_at claim.
            models.UniqueConstraint(
                fields=["rating", "result"],
                condition=Q(result__isnull=False),
                name="one_change_per_rating_and_result",
            )
        ]

    def __str__(self):
        return f"{self.reason} of rating {self.rating_id}"

    @property
    def ordinal_before(self) -> float:
        return skill.ordinal(self.mu_before, self.sigma_before)

    @property
    def ordinal_after(self) -> float:
        return skill.ordinal(self.mu_after, self.sigma_after)
