"""Operators' view of players and lobbies. Every write goes through `lobby.services`: a lobby
deleted or edited by hand would strand its members (no event, no relay) and its relay session."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from config.admin_base import ReadOnlyAdmin
from config.audit import operator_action
from lobby import services
from lobby.models import Lobby, Player
from relays.admin import AgeFilter


class HasRelayFilter(admin.SimpleListFilter):
    title = "relay session"
    parameter_name = "relay"

    def lookups(self, request, model_admin):
        return [("yes", "has one"), ("no", "none")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(relay_session__isnull=False)
        if self.value() == "no":
            return queryset.filter(relay_session__isnull=True)
        return queryset


@admin.register(Lobby)
class LobbyAdmin(ReadOnlyAdmin):
    list_display = ("name", "state", "host", "players", "region", "mode", "visibility",
                    "relay", "created_at")  # fmt: skip
    list_filter = ("state", HasRelayFilter, AgeFilter, "visibility", "mode", "region")
    search_fields = ("name", "join_code", "memberships__player__display_name")
    date_hierarchy = "created_at"
    # Newest first: a live lobby is at the top, not among the closed ones in UUID order.
    ordering = ("-created_at", "pk")
    actions = ["end_lobbies", "retry_relay_allocation"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "state",
                    "host",
                    "members",
                    "join_code",
                    "visibility",
                    "mode",
                    "region",
                )
            },
        ),
        ("Relay", {"fields": ("relay_session", "failure_reason")}),
        ("Closed", {"fields": ("closed_reason", "closed_at")}),
        (
            "Details",
            {
                "classes": ("collapse",),
                "fields": (
                    "id",
                    "max_players",
                    "metadata",
                    "joinable_after_start",
                    "version",
                    "created_at",
                    "last_activity_at",
                ),
            },
        ),
    )
    readonly_fields = ("id", "name", "state", "visibility", "host", "members", "max_players",
                       "mode", "region", "metadata", "joinable_after_start", "join_code",
                       "version", "relay_session", "failure_reason", "closed_reason",
                       "created_at", "last_activity_at", "closed_at")  # fmt: skip
    # End and Retry on the detail page as buttons; the page has no Save (nothing is edited here).
    change_form_template = "admin/lobby/lobby/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("host", "relay_session")

    # Read only: players create lobbies through the API, so every rule and event applies; End
    # and Retry are the ways an operator changes one (a deleted row would tell nobody: members
    # would wait on a dead room and its relay session run on).

    @admin.display(description="players", ordering="member_count")
    def players(self, lobby):
        return f"{lobby.member_count} / {lobby.max_players}"

    @admin.display(description="relay", ordering="relay_session__status")
    def relay(self, lobby):
        return lobby.relay_session.status if lobby.relay_session_id else "-"

    @admin.display(description="members")
    def members(self, lobby):
        rows = lobby.memberships.select_related("player").order_by("state", "joined_at", "pk")
        if not rows:
            return "-"
        return format_html(
            '<table class="members"><thead><tr><th>player</th><th>state</th><th>ready</th>'
            "<th>IP</th><th>joined</th><th>left</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">{}</a>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                "<td>{}</td><td>{}</td></tr>",
                (
                    (
                        reverse("admin:lobby_player_change", args=[m.player_id]),
                        m.player.display_name,
                        " (host)" if m.player_id == lobby.host_id else "",
                        m.state,
                        "yes" if m.ready else "no",
                        m.ip,
                        m.joined_at.strftime("%Y-%m-%d %H:%M:%S"),
                        m.ended_at.strftime("%H:%M:%S") if m.ended_at else "",
                    )
                    for m in rows
                ),
            ),
        )

    # --- the operator's two writes, from the list (actions) and the detail page (buttons) ----

    def get_urls(self):
        # POST only: a state change never happens on a GET (link prefetch, a crawler).
        end = self.admin_site.admin_view(require_POST(self.end_view))
        retry = self.admin_site.admin_view(require_POST(self.retry_view))
        return [
            path("<uuid:lobby_id>/end/", end, name="lobby_lobby_end"),
            path("<uuid:lobby_id>/retry/", retry, name="lobby_lobby_retry"),
            *super().get_urls(),
        ]

    def _one(self, request, lobby_id) -> Lobby:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Lobby, pk=lobby_id)

    def end_view(self, request, lobby_id):
        lobby = self._one(request, lobby_id)
        self.end_lobbies(request, Lobby.objects.filter(pk=lobby.pk))
        return HttpResponseRedirect(reverse("admin:lobby_lobby_change", args=[lobby.pk]))

    def retry_view(self, request, lobby_id):
        lobby = self._one(request, lobby_id)
        self.retry_relay_allocation(request, Lobby.objects.filter(pk=lobby.pk))
        return HttpResponseRedirect(reverse("admin:lobby_lobby_change", args=[lobby.pk]))

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            context["can_end"] = obj.state != Lobby.State.CLOSED
            context["can_retry"] = obj.state in (Lobby.State.FAILED, Lobby.State.ALLOCATING)
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    @admin.action(description="End lobby (members are told; the relay session is deleted)")
    def end_lobbies(self, request, queryset):
        ended = sum(
            services.lobby_close(lobby_id=lobby.pk, reason="ended_by_operator")
            for lobby in queryset
        )
        operator_action(user=request.user, action="lobby.end", targets=queryset, ended=ended)
        skipped = queryset.count() - ended
        self.message_user(request, f"{ended} lobby(ies) ended.")
        if skipped:
            self.message_user(request, f"{skipped} skipped: closed already.", messages.WARNING)

    @admin.action(description="Retry relay allocation (failed or stuck allocating)")
    def retry_relay_allocation(self, request, queryset):
        retried = sum(services.lobby_retry_allocation(lobby_id=lobby.pk) for lobby in queryset)
        operator_action(user=request.user, action="lobby.retry", targets=queryset, retried=retried)
        skipped = queryset.count() - retried
        if retried:
            self.message_user(request, f"{retried} lobby(ies) allocating a new relay session.")
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: only failed or allocating lobbies.", messages.WARNING
            )


@admin.register(Player)
class PlayerAdmin(admin.ModelAdmin):
    list_display = ("display_name", "is_guest", "user", "lobbies", "last_seen_at", "created_at")
    list_filter = ("is_guest",)
    search_fields = ("display_name", "user__username")
    ordering = ("-created_at", "pk")
    fields = ("display_name", "is_guest", "user", "memberships_table", "event_seq",
              "last_seen_at", "created_at")  # fmt: skip
    readonly_fields = ("is_guest", "user", "memberships_table", "event_seq", "last_seen_at",
                       "created_at")  # fmt: skip

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("user")
            .annotate(lobby_count=Count("memberships", filter=Q(memberships__state="active")))
        )

    def has_add_permission(self, request):
        # A player needs a user account and a token: guests come from the API, accounts from
        # sign-up or Users. A bare form here could only fail.
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting a player in a lobby would strand its lobby (count, seats, host).
        return False

    @admin.display(description="in a lobby", boolean=True)
    def lobbies(self, player):
        return bool(player.lobby_count)

    @admin.display(description="lobbies")
    def memberships_table(self, player):
        rows = player.memberships.select_related("lobby").order_by("-joined_at")[:50]
        if not rows:
            return "-"
        return format_html(
            '<table class="members"><thead><tr><th>lobby</th><th>lobby state</th>'
            "<th>membership</th><th>joined</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
                (
                    (
                        reverse("admin:lobby_lobby_change", args=[m.lobby_id]),
                        m.lobby.name,
                        m.lobby.state,
                        m.state,
                        m.joined_at.strftime("%Y-%m-%d %H:%M:%S"),
                    )
                    for m in rows
                ),
            ),
        )


# --- Players' API tokens -------------------------------------------------------------------------
# A token is a player's only credential: staff may see who has one and revoke it (delete), never
# read it. DRF's own token admin lists every key in full, and its objects' names (page titles,
# the admin's change history) are the key itself.
admin.site.unregister(TokenProxy)
TokenProxy.__str__ = lambda token: f"API token of {token.user}"


@admin.register(TokenProxy)
class MaskedTokenAdmin(TokenAdmin):
    list_display = ("masked_key", "user", "created")
    fields = ("user", "masked_key", "created")
    readonly_fields = ("masked_key", "created")

    @admin.display(description="key")
    def masked_key(self, token):
        return mask_key(token.key)


def mask_key(key: str) -> str:
    """Enough to tell two tokens apart in a support conversation, too little to use one."""
    return f"{key[:4]}…" if key else ""
