"""Operators' view of relay sessions. Every write goes through `relays.services` (or a task that
calls them): a row deleted or edited by hand would leave its Edgegap session running (and billed)
and the lobby that holds it waiting for a relay that never comes."""

from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from config.admin_base import ReadOnlyAdmin
from config.audit import operator_action
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
class RelaySessionAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "owner", "status", "relay_ip", "server_port", "client_port",
                    "created_at", "last_error")  # fmt: skip
    list_filter = ("status", AgeFilter)
    search_fields = ("session_id", "owner", "seats__holder", "seats__ip")
    date_hierarchy = "created_at"
    inlines = [SeatInline]
    actions = ["delete_at_edgegap"]
    fields = ("id", "owner", "status", "session_id", "masked_session_token", "relay_host",
              "relay_ip", "server_port", "client_port", "last_error", "poll_count", "created_at",
              "ready_deadline", "ready_at", "closed_at")  # fmt: skip
    readonly_fields = fields
    # "Reconcile now" is a button above the list: it needs no selected row.
    change_list_template = "admin/relays/relaysession/change_list.html"

    @admin.display(description="session token")
    def masked_session_token(self, session):
        return mask(session.session_token)

    # Read only: sessions are opened by lobbies and matches, not by hand; deleting the row alone
    # would leave the Edgegap session running and its lobby waiting, so "Delete at Edgegap"
    # closes it through the service instead, and the lobby is told.

    def get_urls(self):
        # POST only: a state change never happens on a GET (link prefetch, a crawler).
        reconcile = self.admin_site.admin_view(require_POST(self.reconcile_view))
        return [
            path("reconcile/", reconcile, name="relays_relaysession_reconcile"),
            *super().get_urls(),
        ]

    def reconcile_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        tasks.reconcile.delay()
        # No target: the pass looks at every session, ours and Edgegap's.
        operator_action(user=request.user, action="relay.reconcile")
        self.message_user(
            request,
            "Reconciliation queued: sessions Edgegap lost are marked, orphans deleted.",
            messages.INFO,
        )
        return HttpResponseRedirect(reverse("admin:relays_relaysession_changelist"))

    @admin.action(description="Delete at Edgegap (closes the session; its lobby is told)")
    def delete_at_edgegap(self, request, queryset):
        closed = sum(
            services.relay_session_close(session=session, reason="closed by an operator")
            for session in queryset
        )
        operator_action(user=request.user, action="relay.delete", targets=queryset, closed=closed)
        skipped = queryset.count() - closed
        self.message_user(request, f"{closed} session(s) closing; Edgegap deletes them shortly.")
        if skipped:
            self.message_user(
                request, f"{skipped} skipped: they were over already.", messages.WARNING
            )


@admin.register(UnownedSession)
class UnownedSessionAdmin(ReadOnlyAdmin):
    """Strangers seen at Edgegap, kept by reconciliation to time their grace period: read only
    (a row added by hand means nothing, and a deleted one only restarts the grace)."""

    list_display = ("session_id", "ours", "first_seen_at")
    list_filter = ("ours",)
    readonly_fields = ("session_id", "ours", "first_seen_at")
