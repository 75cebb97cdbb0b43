"""Ratings in the admin: leaderboards, each player's rating and history, results and disputes.

Nothing here writes a rating or a result itself: an operator's change goes through
`ratings.services` (rating_adjust / rating_reset / result_resolve), which keep the history
(who, when, why) and rate a result exactly once.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count

from config.audit import operator_action
from lobby.errors import ServiceError
from ratings import services
from ratings.models import Leaderboard, MatchResult, Rating, RatingChange, ResultReport


@admin.register(Leaderboard)
class LeaderboardAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "open_to_hand_made_lobbies", "players", "created_at")
    search_fields = ("name", "title")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(player_count=Count("ratings"))

    @admin.display(description="players", ordering="player_count")
    def players(self, board):
        return board.player_count


class RatingChangeInline(admin.TabularInline):
    model = RatingChange
    fk_name = "rating"
    extra = 0
    can_delete = False
    fields = ("created_at", "reason", "result", "mu_before", "sigma_before", "mu_after",
              "sigma_after", "actor", "note")  # fmt: skip
    readonly_fields = fields
    ordering = ("-created_at", "-pk")

    def has_add_permission(self, request, obj=None):
        return False


class RatingForm(forms.ModelForm):
    """mu and sigma are read-only; an operator sets new ones (or resets) with a reason."""

    new_mu = forms.FloatField(required=False, label="set mu to")
    new_sigma = forms.FloatField(required=False, label="set sigma to", min_value=1)
    reset = forms.BooleanField(required=False, help_text="back to a new player's 1500 / 500")
    note = forms.CharField(required=False, max_length=300, help_text="why (kept in the history)")

    class Meta:
        model = Rating
        fields = ()

    def clean(self):
        data = super().clean()
        adjusting = data.get("new_mu") is not None or data.get("new_sigma") is not None
        if (adjusting or data.get("reset")) and not (data.get("note") or "").strip():
            raise forms.ValidationError("Say why in the note: it is kept in the history.")
        if adjusting and data.get("reset"):
            raise forms.ValidationError("Either reset or set new values, not both.")
        return data


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    form = RatingForm
    list_display = ("player", "leaderboard", "ordinal_shown", "mu_shown", "sigma_shown", "games",
                    "updated_at")  # fmt: skip
    list_filter = ("leaderboard",)
    search_fields = ("player__display_name",)
    ordering = ("leaderboard", "-ordinal")
    readonly_fields = ("player", "leaderboard", "mu", "sigma", "ordinal", "games", "updated_at")
    fields = (*readonly_fields, "new_mu", "new_sigma", "reset", "note")
    inlines = [RatingChangeInline]

    def has_add_permission(self, request):
        return False  # ratings come from results

    @admin.display(description="rating", ordering="ordinal")
    def ordinal_shown(self, rating):
        return round(rating.ordinal)

    @admin.display(description="mu", ordering="mu")
    def mu_shown(self, rating):
        return round(rating.mu, 1)

    @admin.display(description="sigma", ordering="sigma")
    def sigma_shown(self, rating):
        return round(rating.sigma, 1)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        note = data.get("note") or ""
        if data.get("reset"):
            rating = services.rating_reset(rating_id=obj.pk, actor=request.user, note=note)
            operator_action(user=request.user, action="rating.reset", target=rating, reason=note)
        elif data.get("new_mu") is not None or data.get("new_sigma") is not None:
            mu = data["new_mu"] if data.get("new_mu") is not None else obj.mu
            sigma = data["new_sigma"] if data.get("new_sigma") is not None else obj.sigma
            try:
                rating = services.rating_adjust(
                    rating_id=obj.pk, mu=mu, sigma=sigma, actor=request.user, note=note
                )
            except ServiceError as exc:
                messages.error(request, exc.message)
                return  # nothing changed: nothing to audit
            operator_action(
                user=request.user, action="rating.adjust", target=rating, reason=note,
                mu=mu, sigma=sigma,
            )  # fmt: skip


class ResultReportInline(admin.TabularInline):
    model = ResultReport
    extra = 0
    can_delete = False
    fields = ("player", "placements_shown", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="placements")
    def placements_shown(self, report):
        return _placements_text(report.placements)


def _placements_text(placements) -> str:
    if not placements:
        return "-"
    return "; ".join(f"#{t['rank']}: {', '.join(map(str, t['players']))}" for t in placements)


class ResolveForm(forms.ModelForm):
    """Settle a disputed result: stand by one of the reports, give placements, or void it."""

    decision = forms.ChoiceField(required=False, label="resolve")
    placements_json = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        label="or placements",
        help_text='[{"players": [ids], "rank": 1}, ...] (for "custom")',
    )
    note = forms.CharField(required=False, max_length=300, help_text="why (kept on the result)")

    class Meta:
        model = MatchResult
        fields = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "-- leave as it is --")]
        if self.instance.pk and self.instance.state in ("pending", "disputed"):
            distinct = []
            for placements in self.instance.reports.values_list("placements", flat=True):
                if placements not in distinct:
                    distinct.append(placements)
            choices += [(str(n), f"as reported: {_placements_text(p)}") for n, p in
                        enumerate(distinct)]  # fmt: skip
            choices += [("custom", "custom placements (below)"), ("void", "void: rate nothing")]
            self._distinct = distinct
        self.fields["decision"].choices = choices

    def clean(self):
        data = super().clean()
        decision = data.get("decision")
        if decision and not (data.get("note") or "").strip():
            raise forms.ValidationError("Say why in the note: it is kept on the result.")
        if decision == "custom":
            try:
                data["placements"] = json.loads(data.get("placements_json") or "")
            except ValueError as exc:
                raise forms.ValidationError(f"placements: not JSON ({exc})") from None
        elif decision and decision != "void":
            data["placements"] = self._distinct[int(decision)]
        return data


@admin.register(MatchResult)
class MatchResultAdmin(admin.ModelAdmin):
    form = ResolveForm
    list_display = ("lobby", "leaderboard", "state", "report_count", "quality_shown",
                    "created_at", "resolved_by")  # fmt: skip
    list_filter = ("state", "leaderboard")
    date_hierarchy = "created_at"
    search_fields = ("lobby__id", "lobby__name")
    readonly_fields = ("lobby", "leaderboard", "state", "roster", "teams", "placements_text",
                       "quality", "created_at", "decide_by", "decided_at", "rated_at",
                       "resolved_by", "resolution_note")  # fmt: skip
    fields = (*readonly_fields, "decision", "placements_json", "note")
    inlines = [ResultReportInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("lobby", "leaderboard", "resolved_by")
        return qs.annotate(reports_n=Count("reports"))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a rated result is history; a wrong one is voided or adjusted instead

    @admin.display(description="reports", ordering="reports_n")
    def report_count(self, result):
        return f"{result.reports_n}/{len(result.roster)}"

    @admin.display(description="quality", ordering="quality")
    def quality_shown(self, result):
        return "-" if result.quality is None else f"{result.quality:.3f}"

    @admin.display(description="placements")
    def placements_text(self, result):
        return _placements_text(result.placements)

    def save_model(self, request, obj, form, change):
        decision = form.cleaned_data.get("decision")
        if not decision:
            return
        note = form.cleaned_data.get("note") or ""
        try:
            result = services.result_resolve(
                result_id=obj.pk,
                placements=None if decision == "void" else form.cleaned_data["placements"],
                actor=request.user,
                note=note,
            )
        except ServiceError as exc:
            messages.error(request, f"Not resolved: {exc.message}")
            return
        operator_action(
            user=request.user, action="result.resolve", target=result, reason=note,
            state=result.state,
        )  # fmt: skip
