"""The lobby's answer shapes, each defined once: the REST answers, the events and the schema all
render through these serializers (HackSoft's output serializers, shared because a `lobby.updated`
event carries exactly what `GET /api/v1/lobbies/{id}` answers)."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import serializers

from lobby.models import Lobby, Membership


class MemberOut(serializers.Serializer):
    id = serializers.IntegerField(source="player_id")
    display_name = serializers.CharField(source="player.display_name")
    ready = serializers.BooleanField()
    is_host = serializers.SerializerMethodField()

    def get_is_host(self, member: Membership) -> bool:
        return member.player_id == self.context["host_id"]


class LobbyDetailOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=Lobby.State.choices)
    version = serializers.IntegerField()
    visibility = serializers.ChoiceField(choices=Lobby.Visibility.choices)
    max_players = serializers.IntegerField()
    member_count = serializers.IntegerField()
    mode = serializers.CharField()
    region = serializers.CharField()
    metadata = serializers.DictField()
    joinable_after_start = serializers.BooleanField()
    host_id = serializers.IntegerField()
    join_code = serializers.CharField(allow_null=True, help_text="members only")
    failure_reason = serializers.SerializerMethodField()
    members = MemberOut(many=True)

    def get_failure_reason(self, snapshot) -> str | None:
        return snapshot.failure_reason or None


@dataclass
class LobbySnapshot:
    """A lobby with the members it is shown with (read once, under the change's lock)."""

    lobby: Lobby
    members: list[Membership]

    def __getattr__(self, name):
        return getattr(self.lobby, name)

    @property
    def member_count(self) -> int:
        return len(self.members)


def lobby_render(lobby: Lobby, members: list[Membership]) -> dict:
    data = LobbyDetailOut(LobbySnapshot(lobby, members), context={"host_id": lobby.host_id}).data
    # Plain containers: the snapshot is stored as an event (JSON) and pushed (msgpack).
    return {**data, "members": [dict(member) for member in data["members"]]}
