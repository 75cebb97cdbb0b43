"""Matchmaking API v1 (design.md §4): profiles, tickets, parties. Thin views."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.inputs import OBJECT_ONLY, JsonIntegerField, TextField
from config.openapi import errors
from lobby.ip import client_ip
from lobby.throttles import IpThrottle, JoinCodeThrottle, PlayerThrottle
from matchmaking import selectors, services
from matchmaking.rules import attributes_shape_problem
from matchmaking.shapes import PartyOut, TicketOut


class ProfileOut(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    mode = serializers.CharField()
    rules = serializers.JSONField()
    ticket_ttl = serializers.IntegerField()


class ProfileListApi(APIView):
    @extend_schema(responses=ProfileOut(many=True))
    def get(self, request):
        return Response(ProfileOut(selectors.profile_list(), many=True).data)


class TicketCreateApi(APIView):
    class TicketIn(serializers.Serializer):
        profile = TextField(min_length=1, max_length=64)
        attributes = serializers.DictField(default=dict, error_messages=OBJECT_ONLY)

    @extend_schema(
        request=TicketIn,
        responses={
            201: TicketOut,
            200: TicketOut,
            **errors(
                e400="`invalid` attributes: `fields` and `problems` (a party's: also"
                " `party_disagree`, `party_too_few_in_common`, `party_no_common_region`; and"
                " `player_id` when a member's own attributes are at fault)",
                e404="`profile_not_found`",
                e403="`not_party_leader`",
                e409="`already_queued` (with `ticket_id` and `profile`), `party_too_large`,"
                " `already_in_lobby`, `busy`",
            ),
        },
    )
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
        return Response(selectors.ticket_snapshot(ticket), status=code)


class TicketDetailApi(APIView):
    @extend_schema(responses={200: TicketOut, **errors(e404="`ticket_not_found`")})
    def get(self, request, ticket_id):
        ticket = selectors.ticket_get(ticket_id=ticket_id, player=request.player)
        return Response(selectors.ticket_snapshot(ticket))

    @extend_schema(
        responses={
            200: TicketOut,
            **errors(e404="`ticket_not_found`", e403="`not_party_leader`", e409="`ticket_matched`"),
        }
    )
    def delete(self, request, ticket_id):
        ticket = services.ticket_cancel(ticket_id=ticket_id, player=request.player)
        return Response(selectors.ticket_snapshot(ticket))


class PartyCreateApi(APIView):
    class PartyIn(serializers.Serializer):
        max_size = JsonIntegerField(min_value=2, max_value=16, default=4)

    @extend_schema(
        request=PartyIn,
        responses={201: PartyOut, **errors(e409="`already_in_party`, `already_queued`")},
    )
    def post(self, request):
        data = self.PartyIn(data=request.data)
        data.is_valid(raise_exception=True)
        party = services.party_create(
            player=request.player, ip=client_ip(request), **data.validated_data
        )
        return Response(PartyOut(party).data, status=status.HTTP_201_CREATED)


class PartyDetailApi(APIView):
    @extend_schema(responses={200: PartyOut, **errors(e404="`party_not_found`")})
    def get(self, request, party_id):
        return Response(
            PartyOut(selectors.party_get(party_id=party_id, player=request.player)).data
        )


class PartyJoinApi(APIView):
    throttle_classes = [JoinCodeThrottle, PlayerThrottle, IpThrottle]

    class PartyJoinIn(serializers.Serializer):
        code = TextField(min_length=1, max_length=16)

    @extend_schema(
        request=PartyJoinIn,
        responses={
            200: PartyOut,
            **errors(
                e404="`wrong_code`",
                e409="`already_in_party`, `already_queued`, `party_searching`, `party_full`",
            ),
        },
    )
    def post(self, request):
        data = self.PartyJoinIn(data=request.data)
        data.is_valid(raise_exception=True)
        party = services.party_join(
            code=data.validated_data["code"], player=request.player, ip=client_ip(request)
        )
        return Response(PartyOut(party).data)


class PartyLeaveApi(APIView):
    @extend_schema(request=None, responses={204: None, **errors(e403="`not_in_party`")})
    def post(self, request, party_id):
        services.party_leave(party_id=party_id, player=request.player)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PartyAttributesApi(APIView):
    class PartyAttributesIn(serializers.Serializer):
        attributes = serializers.DictField(
            allow_null=True,
            error_messages=OBJECT_ONLY,
            help_text="the caller's own ticket attributes, by rule name; null clears them",
        )

        def validate_attributes(self, value):
            if value is None:
                return None
            problem = attributes_shape_problem(value)
            if problem:
                raise serializers.ValidationError(problem)
            return value

    @extend_schema(
        request=PartyAttributesIn,
        responses={
            200: PartyOut,
            **errors(e404="`party_not_found`", e409="`party_searching`"),
        },
    )
    def put(self, request, party_id):
        data = self.PartyAttributesIn(data=request.data)
        data.is_valid(raise_exception=True)
        party = services.party_attributes_set(
            party_id=party_id,
            player=request.player,
            attributes=data.validated_data["attributes"],
        )
        return Response(selectors.party_snapshot(party))
