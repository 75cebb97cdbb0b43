import json

from django.contrib import admin

from matchmaking import selectors
from matchmaking.forms import ProfileForm
from matchmaking.models import Party, Profile, Ticket
from matchmaking.rules import EXAMPLE_RULES


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ("name", "title", "enabled", "queue_size", "median_wait", "ticket_ttl")
    list_filter = ("enabled",)
    search_fields = ("name", "title")
    fieldsets = (
        (None, {"fields": ("name", "title", "description", "mode", "ticket_ttl", "enabled")}),
        ("Rules", {"classes": ("wide", "rules"), "fields": ("rules",)}),
    )
    change_form_template = "admin/matchmaking/profile/change_form.html"

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
        # The value itself, not its JSON text: the form field encodes it once for the textarea
        # (a string here would be encoded twice and refused on save).
        return {"rules": EXAMPLE_RULES, **super().get_changeform_initial_data(request)}

    def render_change_form(self, request, context, *args, **kwargs):
        context["example_rules"] = json.dumps(EXAMPLE_RULES, indent=2)
        return super().render_change_form(request, context, *args, **kwargs)


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("pk", "profile", "status", "player", "expansion_step", "blocked_by",
                    "created_at", "lobby")  # fmt: skip
    list_filter = ("status", "profile")
    search_fields = ("player__display_name", "pk")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Ticket._meta.fields]

    def has_add_permission(self, request):
        return False  # players queue through the API

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # A deleted searching ticket leaves its player's page waiting with no event: tickets
        # end by cancel, match or expiry.
        return False


@admin.register(Party)
class PartyAdmin(admin.ModelAdmin):
    list_display = ("code", "leader", "max_size", "created_at", "disbanded_at")
    readonly_fields = ("code", "leader", "max_size", "created_at", "disbanded_at")

    def has_add_permission(self, request):
        return False  # a party needs a leader who is a player: they are made through the API

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # members and their tickets would be left behind
