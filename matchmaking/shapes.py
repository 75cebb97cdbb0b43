"""Matchmaking's answer shapes, each defined once: the REST answers, the `ticket.updated` event
and the schema render through these serializers."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matchmaking.explanations import KINDS, explanation_data
from matchmaking.models import Party, Ticket
from matchmaking.rules import RulesError, parse_rules


class ExplanationOut(serializers.Serializer):
    """Why a searching ticket has no match yet, as data (matchmaking/explanations.py): clients
    say it in their own words; `text` is the matcher's line, for logs."""

    kind = serializers.ChoiceField(choices=KINDS)
    rule = serializers.CharField(allow_null=True)
    type = serializers.CharField(allow_null=True)
    step = serializers.IntegerField()
    parameters = serializers.DictField()
    problem = serializers.ChoiceField(
        choices=["too_few", "party_too_large", "no_region"], allow_null=True
    )
    needed = serializers.IntegerField(allow_null=True)
    found = serializers.IntegerField(allow_null=True)
    quality = serializers.FloatField(allow_null=True)
    text = serializers.CharField(allow_null=True)
    party_size = serializers.IntegerField(required=False)
    best_region = serializers.CharField(required=False)
    best_ms = serializers.FloatField(required=False)


class TicketOut(serializers.Serializer):
    id = serializers.UUIDField()
    profile = serializers.CharField(source="profile.name")
    status = serializers.ChoiceField(choices=Ticket.Status.choices)
    lobby_id = serializers.UUIDField(allow_null=True)
    team = serializers.IntegerField(allow_null=True)
    players = serializers.ListField(child=serializers.IntegerField(), source="player_ids")
    party_id = serializers.UUIDField(allow_null=True)
    attributes = serializers.JSONField()
    expansion_step = serializers.IntegerField()
    blocked_by = serializers.SerializerMethodField()
    explanation = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()

    def get_blocked_by(self, ticket: Ticket) -> str | None:
        return ticket.blocked_by or None

    @extend_schema_field(ExplanationOut(allow_null=True))
    def get_explanation(self, ticket: Ticket) -> dict | None:
        if ticket.status != Ticket.Status.SEARCHING:
            return None
        try:
            rules = parse_rules(ticket.profile.rules)
        except RulesError:
            rules = None  # saved before a validation it fails: the line still says the rest
        return explanation_data(
            blocked_by=ticket.blocked_by, step=ticket.expansion_step, rules=rules
        )


class PartyOut(serializers.Serializer):
    id = serializers.UUIDField()
    code = serializers.CharField()
    leader_id = serializers.IntegerField()
    max_size = serializers.IntegerField()
    members = serializers.SerializerMethodField()

    def get_members(self, party: Party) -> list[int]:
        return list(party.members.filter(active=True).values_list("player_id", flat=True))
