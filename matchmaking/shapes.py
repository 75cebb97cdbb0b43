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


class MemberAttributesOut(serializers.Serializer):
    player_id = serializers.IntegerField()
    attributes = serializers.JSONField(
        allow_null=True, help_text="as the member set them; null: it gave none"
    )


class PartyOut(serializers.Serializer):
    """A party as its members see it (REST answers and the `party.updated` event). Members'
    attributes are shown to the whole party, values included: they are what the party's ticket
    will be made of, and a leader's client shows who gave what and where they disagree."""

    id = serializers.UUIDField()
    code = serializers.CharField()
    leader_id = serializers.IntegerField()
    max_size = serializers.IntegerField()
    members = serializers.SerializerMethodField()
    member_attributes = serializers.SerializerMethodField()

    def get_members(self, party: Party) -> list[int]:
        return [player_id for player_id, _ in self._active(party)]

    @extend_schema_field(MemberAttributesOut(many=True))
    def get_member_attributes(self, party: Party) -> list[dict]:
        return [
            {"player_id": player_id, "attributes": attributes}
            for player_id, attributes in self._active(party)
        ]

    def _active(self, party: Party) -> list[tuple[int, dict | None]]:
        # One query for both fields, in join order (PartyMember's ordering).
        cache = self.__dict__.setdefault("_members", {})
        if party.pk not in cache:
            cache[party.pk] = list(
                party.members.filter(active=True).values_list("player_id", "attributes")
            )
        return cache[party.pk]
