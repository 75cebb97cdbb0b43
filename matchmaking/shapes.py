"""Matchmaking's answer shapes, each defined once: the REST answers, the `ticket.updated` event
and the schema render through these serializers."""

from rest_framework import serializers

from matchmaking.models import Party, Ticket


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
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()

    def get_blocked_by(self, ticket: Ticket) -> str | None:
        return ticket.blocked_by or None


class PartyOut(serializers.Serializer):
    id = serializers.UUIDField()
    code = serializers.CharField()
    leader_id = serializers.IntegerField()
    max_size = serializers.IntegerField()
    members = serializers.SerializerMethodField()

    def get_members(self, party: Party) -> list[int]:
        return list(party.members.filter(active=True).values_list("player_id", flat=True))
