from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone

from relays import services, tasks
from relays.models import RelaySession, Seat, UnownedSession


def mask(token) -> str:
    """Enough of a relay token to tell two apart, not enough to use one."""
    if token is None:
        return "-"
    return f"•••{str(token)[-3:]}"


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BUCKETS = {
        "5m": ("under 5 minutes", timedelta(minutes=5)),
        "1h": ("under 1 hour", timedelta(hours=1)),
        "1d": ("under 1 day", timedelta(days=1)),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.BUCKETS.items()] + [
            ("old", "older than 1 day")
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() in self.BUCKETS:
            return queryset.filter(created_at__gte=now - self.BUCKETS[self.value()][1])
        if self.value() == "old":
            return queryset.filter(created_at__lt=now - timedelta(days=1))
        return queryset


class SeatInline(admin.TabularInline):
    model = Seat
    extra = 0
    can_delete = False
    fields = ("ordinal", "role", "holder", "ip", "masked_user_token", "revoked", "revoke_sent")
    readonly_fields = fields

    @admin.display(description="user token")
    def masked_user_token(self, seat):
        return mask(seat.user_token)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RelaySession)
class RelaySessionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "status", "relay_ip", "server_port", "client_port",
                    "created_at", "last_error")  # fmt: skip
    list_filter = ("status", AgeFilter)
    search_fields = ("session_id", "owner", "seats__holder", "seats__ip")
    date_hierarchy = "created_at"
    inlines = [SeatInline]
    actions = ["delete_at_edgegap", "reconcile_now"]
    fields = ("id", "owner", "status", "session_id", "masked_session_token", "relay_host",
              "relay_ip", "server_port", "client_port", "last_error", "poll_count", "created_at",
              "ready_deadline", "ready_at", "closed_at")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="session token")
    def masked_session_token(self, session):
        return mask(session.session_token)

    def has_add_permission(self, request):
        return False  # sessions are opened by lobbies and matches, not by hand

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Delete at Edgegap (closes the session)")
    def delete_at_edgegap(self, request, queryset):
        closed = sum(
            services.relay_session_close(session=session, reason="closed by an operator")
            for session in queryset
        )
        self.message_user(request, f"{closed} session(s) closing; Edgegap deletes them shortly.")

    @admin.action(description="Reconcile now with Edgegap")
    def reconcile_now(self, request, queryset):
        tasks.reconcile.delay()
        self.message_user(request, "Reconciliation queued.", messages.INFO)


@admin.register(UnownedSession)
class UnownedSessionAdmin(admin.ModelAdmin):
    list_display = ("session_id", "first_seen_at")
    readonly_fields = ("session_id", "first_seen_at")
