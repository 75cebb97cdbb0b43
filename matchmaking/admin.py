import json

from django.contrib import admin

from matchmaking import selectors
from matchmaking.models import Party, Profile, Ticket
from matchmaking.rules import EXAMPLE_RULES


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "enabled", "queue_size", "median_wait", "ticket_ttl")
    list_filter = ("enabled",)
    search_fields = ("name", "title")

    def get_changelist_instance(self, request):
        # Queue figures for the whole page in two queries, not two per row.
        self._stats = selectors.queue_stats()
        return super().get_changelist_instance(request)

    @admin.display(description="searching")
    def queue_size(self, profile):
        return self._stats.get(profile.pk, {}).get("searching", 0)

    @admin.display(description="median wait (s)")
    def median_wait(self, profile):
        return self._stats.get(profile.pk, {}).get("median_wait") or "-"

    def get_changeform_initial_data(self, request):
        return {"rules": json.dumps(EXAMPLE_RULES, indent=2)}


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("pk", "profile", "status", "player", "expansion_step", "blocked_by",
                    "created_at", "lobby")  # fmt: skip
    list_filter = ("status", "profile")
    search_fields = ("player__display_name", "pk")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Ticket._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Party)
class PartyAdmin(admin.ModelAdmin):
    list_display = ("code", "leader", "max_size", "created_at", "disbanded_at")
    readonly_fields = ("code", "leader", "max_size", "created_at", "disbanded_at")
