"""Matchmaking API v1 (design.md §4): profiles, tickets, parties. Thin views."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.inputs import OBJECT_ONLY, TextField
from lobby.ip import client_ip
from lobby.throttles import IpThrottle, JoinCodeThrottle, PlayerThrottle
from matchmaking import selectors, services
from matchmaking.models import Party, Ticket


class ProfileOut(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    mode = serializers.CharField()
    rules = serializers.JSONField()
    ticket_ttl = serializers.IntegerField()


class TicketOut(serializers.Serializer):
    id = serializers.UUIDField()
    profile = serializers.CharField()
    status = serializers.ChoiceField(choices=Ticket.Status.choices)
    lobby_id = serializers.UUIDField(allow_null=True)
    team = serializers.IntegerField(allow_null=True)
    players = serializers.ListField(child=serializers.IntegerField())
    party_id = serializers.UUIDField(allow_null=True)
    attributes = serializers.JSONField()
    expansion_step = serializers.IntegerField()
    blocked_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class PartyOut(serializers.Serializer):
    id = serializers.UUIDField()
    code = serializers.CharField()
    leader_id = serializers.IntegerField()
    max_size = serializers.IntegerField()
    members = serializers.ListField(child=serializers.IntegerField())


def _party(party: Party) -> dict:
    return {
        "id": party.pk,
        "code": party.code,
        "leader_id": party.leader_id,
        "max_size": party.max_size,
        "members": list(party.members.filter(active=True).values_list("player_id", flat=True)),
    }


class ProfileListApi(APIView):
    @extend_schema(responses=ProfileOut(many=True))
    def get(self, request):
        return Response(ProfileOut(selectors.profile_list(), many=True).data)


class TicketCreateApi(APIView):
    class TicketIn(serializers.Serializer):
        profile = TextField(min_length=1, max_length=64)
        attributes = serializers.DictField(default=dict, error_messages=OBJECT_ONLY)

    @extend_schema(request=TicketIn, responses={201: TicketOut, 200: TicketOut})
    def post(self, request):
        data = self.TicketIn(data=request.data)
        data.is_valid(raise_exception=True)
        ticket, created = services.ticket_create(
            player=request.player,
            profile_name=data.validated_data["profile"],
            attributes=data.validated_data["attributes"],
            ip=client_ip(request),
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(services.ticket_snapshot(ticket), status=code)


class TicketDetailApi(APIView):
    @extend_schema(responses=TicketOut)
    def get(self, request, ticket_id):
        ticket = services.ticket_get(ticket_id=ticket_id, player=request.player)
        return Response(services.ticket_snapshot(ticket))

    @extend_schema(responses=TicketOut)
    def delete(self, request, ticket_id):
        ticket = services.ticket_cancel(ticket_id=ticket_id, player=request.player)
        return Response(services.ticket_snapshot(ticket))


class PartyCreateApi(APIView):
    class PartyIn(serializers.Serializer):
        max_size = serializers.IntegerField(min_value=2, max_value=16, default=4)

    @extend_schema(request=PartyIn, responses={201: PartyOut})
    def post(self, request):
        data = self.PartyIn(data=request.data)
        data.is_valid(raise_exception=True)
        party = services.party_create(
            player=request.player, ip=client_ip(request), **data.validated_data
        )
        return Response(_party(party), status=status.HTTP_201_CREATED)


class PartyDetailApi(APIView):
    @extend_schema(responses=PartyOut)
    def get(self, request, party_id):
        return Response(_party(services.party_get(party_id=party_id, player=request.player)))


class PartyJoinApi(APIView):
    throttle_classes = [JoinCodeThrottle, PlayerThrottle, IpThrottle]

    class PartyJoinIn(serializers.Serializer):
        code = TextField(min_length=1, max_length=16)

    @extend_schema(request=PartyJoinIn, responses=PartyOut)
    def post(self, request):
        data = self.PartyJoinIn(data=request.data)
        data.is_valid(raise_exception=True)
        party = services.party_join(
            code=data.validated_data["code"], player=request.player, ip=client_ip(request)
        )
        return Response(_party(party))


class PartyLeaveApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, party_id):
        services.party_leave(party_id=party_id, player=request.player)
        return Response(status=status.HTTP_204_NO_CONTENT)
