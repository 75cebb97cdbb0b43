"""The operators' moderation desk: the report queue with its actions, bans, the audit log
(read only), chat messages, and one page per player with its reports, bans and messages.

Every write goes through `moderation.services`, which records it in the audit log.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from config.admin_base import ReadOnlyAdmin
from lobby.errors import ServiceError
from moderation import selectors, services
from moderation.models import AuditEntry, Ban, ChatMessage, PlayerModeration, Report

DURATIONS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "forever": None,
}


class BanForm(forms.Form):
    duration = forms.ChoiceField(
        choices=[
            ("1h", "1 hour"),
            ("24h", "24 hours"),
            ("7d", "7 days"),
            ("30d", "30 days"),
            ("forever", "For good"),
        ],
        initial="24h",
    )
    reason = forms.CharField(
        max_length=300, help_text="The player is shown this.", widget=forms.TextInput
    )


class NoteForm(forms.Form):
    note = forms.CharField(max_length=300, required=False)


def _player_link(player):
    url = reverse("admin:moderation_playermoderation_change", args=[player.pk])
    return format_html('<a href="{}">{}</a>', url, player.display_name)


def _messages_table(rows):
    """Messages as text: format_html escapes every value, so HTML in a line shows as typed."""
    if not rows:
        return "-"
    return format_html(
        '<table class="members"><thead><tr><th>when</th><th>who</th><th>text</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        format_html_join(
            "",
            "<tr><td>{}</td><td>{} (#{})</td><td>{}</td></tr>",
            ((r["created_at"], r["display_name"], r["sender_id"], r["text"]) for r in rows),
        ),
    )


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "reported_player", "reason", "status", "reporter", "evidence_n")
    list_filter = ("status", "reason")
    search_fields = ("reported__display_name", "reporter__display_name", "note")
    ordering = ("status", "-created_at", "pk")  # "open" sorts before the handled ones
    actions = ["dismiss_reports"]
    fields = ("reported_player", "reporter", "reason", "note", "lobby", "status", "created_at",
              "handled_by", "handled_at", "resolution", "evidence_table")  # fmt: skip
    readonly_fields = fields
    change_form_template = "admin/moderation/report/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("reported", "reporter", "lobby")

    @admin.display(description="reported", ordering="reported__display_name")
    def reported_player(self, report):
        return _player_link(report.reported)

    @admin.display(description="evidence")
    def evidence_n(self, report):
        return f"{len(report.evidence)} messages"

    @admin.display(description="evidence (the lobby's last messages when reported)")
    def evidence_table(self, report):
        return _messages_table(report.evidence)

    def get_urls(self):
        ban = self.admin_site.admin_view(require_POST(self.ban_view))
        dismiss = self.admin_site.admin_view(require_POST(self.dismiss_view))
        return [
            path("<int:report_id>/ban/", ban, name="moderation_report_ban"),
            path("<int:report_id>/dismiss/", dismiss, name="moderation_report_dismiss"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            context["ban_form"] = BanForm(initial={"reason": obj.get_reason_display()})
            context["is_open"] = obj.status == Report.Status.OPEN
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def _report(self, request, report_id) -> Report:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Report.objects.select_related("reported"), pk=report_id)

    def ban_view(self, request, report_id):
        report = self._report(request, report_id)
        form = BanForm(request.POST)
        back = reverse("admin:moderation_report_change", args=[report.pk])
        if not form.is_valid():
            self.message_user(request, "Choose a duration and give a reason.", messages.ERROR)
            return HttpResponseRedirect(back)
        ban = services.report_ban(
            report=report,
            actor=request.user,
            duration=DURATIONS[form.cleaned_data["duration"]],
            reason=form.cleaned_data["reason"],
        )
        self.message_user(
            request, f"{report.reported} is banned {services.ban_until_text(ban)}; report resolved."
        )
        return HttpResponseRedirect(back)

    def dismiss_view(self, request, report_id):
        report = self._report(request, report_id)
        note = NoteForm(request.POST)
        text = note.cleaned_data["note"] if note.is_valid() else ""
        if services.report_dismiss(report=report, actor=request.user, note=text):
            self.message_user(request, "Report dismissed.")
        else:
            self.message_user(request, "That report was handled already.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:moderation_report_changelist"))

    @admin.action(description="Dismiss (nothing to act on)")
    def dismiss_reports(self, request, queryset):
        done = sum(
            services.report_dismiss(report=r, actor=request.user, note="dismissed from the queue")
            for r in queryset
        )
        self.message_user(request, f"{done} report(s) dismissed.")


@admin.register(Ban)
class BanAdmin(ReadOnlyAdmin):
    list_display = ("player_link", "created_at", "until", "in_force", "reason", "created_by")
    list_filter = ("lifted_at",)
    search_fields = ("player__display_name", "reason")
    actions = ["lift_bans"]
    fields = ("player_link", "reason", "created_at", "until", "created_by", "report",
              "lifted_at", "lifted_by", "lift_reason")  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("player", "created_by")

    @admin.display(description="player", ordering="player__display_name")
    def player_link(self, ban):
        return _player_link(ban.player)

    @admin.display(description="until", ordering="expires_at")
    def until(self, ban):
        return services.ban_until_text(ban)

    @admin.display(description="in force", boolean=True)
    def in_force(self, ban):
        return Ban.objects.filter(services.bans_in_force_q(), pk=ban.pk).exists()

    @admin.action(description="Lift the ban (the player may play again)")
    def lift_bans(self, request, queryset):
        lifted = sum(
            services.ban_lift(ban=ban, actor=request.user, reason="lifted from the ban list")
            for ban in queryset
        )
        self.message_user(request, f"{lifted} ban(s) lifted.")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Read only, for everyone: nobody edits or deletes what operators did."""

    list_display = ("at", "actor_name", "action", "target_repr", "reason")
    list_filter = ("action",)
    search_fields = ("actor_name", "target_repr", "reason", "target_id")
    date_hierarchy = "at"
    fields = ("at", "actor_name", "action", "target_type", "target_id", "target_repr",
              "reason", "details")  # fmt: skip
    readonly_fields = fields


@admin.register(ChatMessage)
class ChatMessageAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "display_name", "text", "lobby")
    search_fields = ("text", "display_name")
    date_hierarchy = "created_at"
    list_select_related = ("lobby",)
    fields = ("created_at", "sender", "display_name", "lobby", "text")
    readonly_fields = fields


@admin.register(PlayerModeration)
class PlayerModerationAdmin(ReadOnlyAdmin):
    """One page per player: its reports, bans, recent messages, and the ban form."""

    list_display = ("display_name", "is_guest", "created_at")
    search_fields = ("display_name", "user__username")
    ordering = ("-created_at", "pk")
    change_form_template = "admin/moderation/playermoderation/change_form.html"
    fields = ("display_name", "is_guest", "created_at")
    readonly_fields = fields

    def get_urls(self):
        ban = self.admin_site.admin_view(require_POST(self.ban_view))
        lift = self.admin_site.admin_view(require_POST(self.lift_view))
        return [
            path("<int:player_id>/ban/", ban, name="moderation_player_ban"),
            path("<int:player_id>/lift/<int:ban_id>/", lift, name="moderation_player_lift"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            record = selectors.player_record(player=obj)
            current = services.ban_in_force(player_id=obj.pk)
            context.update(
                record=record,
                ban_in_force=current,
                ban_until=services.ban_until_text(current) if current else "",
                ban_form=BanForm(),
                messages_table=_messages_table([m.as_data() for m in record["messages"]]),
            )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def _player(self, request, player_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(PlayerModeration, pk=player_id)

    def ban_view(self, request, player_id):
        player = self._player(request, player_id)
        form = BanForm(request.POST)
        back = reverse("admin:moderation_playermoderation_change", args=[player.pk])
        if not form.is_valid():
            self.message_user(request, "Choose a duration and give a reason.", messages.ERROR)
            return HttpResponseRedirect(back)
        try:
            ban = services.ban_create(
                player=player,
                reason=form.cleaned_data["reason"],
                duration=DURATIONS[form.cleaned_data["duration"]],
                actor=request.user,
            )
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(back)
        self.message_user(request, f"{player} is banned {services.ban_until_text(ban)}.")
        return HttpResponseRedirect(back)

    def lift_view(self, request, player_id, ban_id):
        player = self._player(request, player_id)
        ban = get_object_or_404(Ban, pk=ban_id, player=player)
        note = NoteForm(request.POST)
        reason = (note.cleaned_data["note"] if note.is_valid() else "") or "lifted by an operator"
        if services.ban_lift(ban=ban, actor=request.user, reason=reason):
            self.message_user(request, "Ban lifted.")
        return HttpResponseRedirect(
            reverse("admin:moderation_playermoderation_change", args=[player.pk])
        )
