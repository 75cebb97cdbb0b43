from django.contrib import admin, messages

from lobby import services
from lobby.models import Lobby, Membership, Player


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    can_delete = False
    fields = ("player", "state", "ready", "ip", "joined_at", "ended_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # players join through the API, so every rule and event applies


@admin.register(Lobby)
class LobbyAdmin(admin.ModelAdmin):
    list_display = ("name", "join_code", "state", "visibility", "member_count", "max_players",
                    "mode", "region", "host", "created_at")  # fmt: skip
    list_filter = ("state", "visibility", "mode", "region")
    search_fields = ("name", "join_code", "memberships__player__display_name")
    date_hierarchy = "created_at"
    inlines = [MembershipInline]
    actions = ["end_lobbies", "retry_relay_allocation"]
    fields = ("id", "name", "state", "visibility", "host", "max_players", "member_count", "mode",
              "region", "metadata", "joinable_after_start", "join_code", "version",
              "relay_session", "failure_reason", "closed_reason", "created_at",
              "last_activity_at", "closed_at")  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("host")

    def has_add_permission(self, request):
        return False

    @admin.action(description="End lobby (deletes the relay session)")
    def end_lobbies(self, request, queryset):
        ended = sum(
            services.lobby_close(lobby_id=lobby.pk, reason="ended_by_operator")
            for lobby in queryset
        )
        self.message_user(request, f"{ended} lobby(ies) ended.")

    @admin.action(description="Retry relay allocation")
    def retry_relay_allocation(self, request, queryset):
        retried = sum(services.lobby_retry_allocation(lobby_id=lobby.pk) for lobby in queryset)
        skipped = queryset.count() - retried
        self.message_user(request, f"{retried} lobby(ies) allocating a new relay session.")
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: only failed or allocating lobbies.", messages.WARNING
            )


class PlayerMembershipInline(MembershipInline):
    fk_name = "player"
    fields = ("lobby", "state", "ready", "ip", "joined_at", "ended_at")
    readonly_fields = fields


@admin.register(Player)
class PlayerAdmin(admin.ModelAdmin):
    list_display = ("display_name", "is_guest", "user", "last_seen_at", "created_at")
    list_filter = ("is_guest",)
    search_fields = ("display_name", "user__username")
    readonly_fields = ("user", "event_seq", "last_seen_at", "created_at")
    inlines = [PlayerMembershipInline]
