"""The HTTP API v1 (design.md §4): thin views with nested input and output serializers.

A view validates input, calls one service or selector, and serializes the answer. Errors come out
as `{"error": {"code", "message"}}` (lobby.errors).
"""

import json
import re

from django.conf import settings
from django.contrib.auth import login
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.inputs import (
    OBJECT_ONLY,
    JsonBooleanField,
    JsonIntegerField,
    StrictPageNumberPagination,
    TextField,
)
from config.openapi import errors
from lobby import etags, selectors, services
from lobby.ip import client_ip
from lobby.models import Lobby
from lobby.shapes import LobbyDetailOut
from lobby.throttles import GuestCreationThrottle, IpThrottle, JoinCodeThrottle, PlayerThrottle

SLUG = re.compile(r"^[A-Za-z0-9_.-]*$")
METADATA_MAX_KEYS = 16
METADATA_MAX_BYTES = 2048


def _display_name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise serializers.ValidationError("Choose a display name.")
    if any(not ch.isprintable() for ch in value):
        raise serializers.ValidationError("Use printable characters only.")
    return value


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise serializers.ValidationError("Use letters, digits, '.', '_' and '-' only.")
    return value


def _default_max_players() -> int:
    # A default above the operator's LOBBY_MAX_PLAYERS would refuse a field the client never sent.
    return min(8, settings.LOBBY_MAX_PLAYERS)


def _metadata(value) -> dict:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    if len(value) > METADATA_MAX_KEYS:
        raise serializers.ValidationError(f"At most {METADATA_MAX_KEYS} keys.")
    for key, item in value.items():
        if not (0 < len(key) <= 32) or not SLUG.match(key):
            raise serializers.ValidationError(f"Bad key {key[:32]!r}: 1-32 letters, digits, _.-")
        if not isinstance(item, str | int | float | bool) and item is not None:
            raise serializers.ValidationError(f"{key}: values are strings, numbers or booleans.")
        if isinstance(item, str) and len(item) > 256:
            raise serializers.ValidationError(f"{key}: at most 256 characters.")
    if (
        len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        > METADATA_MAX_BYTES
    ):
        raise serializers.ValidationError(f"At most {METADATA_MAX_BYTES} bytes of JSON.")
    return value


class PlayerOut(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    is_guest = serializers.BooleanField()
    last_seq = serializers.IntegerField(
        source="event_seq", help_text="the player's latest event seq: start a stream after it"
    )


class RelayOut(serializers.Serializer):
    host = serializers.CharField()
    ip = serializers.IPAddressField()
    port = serializers.IntegerField()
    protocol = serializers.CharField()


class AssignmentOut(serializers.Serializer):
    lobby_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["pending", "ready", "failed"])
    role = serializers.ChoiceField(choices=["server", "client"])
    relay = RelayOut(allow_null=True)
    session_authorization_token = serializers.IntegerField(allow_null=True)
    user_authorization_token = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)


def _detail(lobby: Lobby, player) -> dict:
    data = selectors.lobby_snapshot(lobby)
    if not any(member["id"] == player.pk for member in data["members"]):
        data["join_code"] = None  # the code is the key to a private lobby: members only
    return data


class GuestCreateApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [GuestCreationThrottle, IpThrottle]

    class GuestIn(serializers.Serializer):
        display_name = TextField(min_length=1, max_length=32, validators=[_display_name])

    class GuestOut(serializers.Serializer):
        id = serializers.IntegerField()
        display_name = serializers.CharField()
        token = serializers.CharField(help_text="send as 'Authorization: Token <token>'")

    @extend_schema(request=GuestIn, responses={201: GuestOut}, auth=[])
    def post(self, request):
        data = self.GuestIn(data=request.data)
        data.is_valid(raise_exception=True)
        name = _display_name(data.validated_data["display_name"])
        player, key = services.player_create_guest(display_name=name)
        # The same player in the browser: a session for the page that created it.
        login(request._request, player.user, backend="django.contrib.auth.backends.ModelBackend")
        body = {"id": player.pk, "display_name": player.display_name, "token": key}
        return Response(self.GuestOut(body).data, status=status.HTTP_201_CREATED)


class MeApi(APIView):
    @extend_schema(responses=PlayerOut)
    def get(self, request):
        return Response(PlayerOut(request.player).data)


class AssignmentApi(APIView):
    @extend_schema(
        parameters=[etags.IF_NONE_MATCH],
        responses={
            200: AssignmentOut,
            **etags.NOT_MODIFIED,
            **errors(e404="`no_assignment`: no match of yours has started"),
        },
    )
    def get(self, request):
        # The tag comes from the player as authentication read it, before the answer is read.
        player = request.player
        etag = etags.assignment_etag(player_id=player.pk, event_seq=player.event_seq)
        if etags.not_modified(request.headers.get("If-None-Match"), etag):
            return etags.not_modified_response(etag)
        answer = Response(AssignmentOut(selectors.assignment_get(player=player)).data)
        answer["ETag"] = etag
        return answer


class LobbyPagination(StrictPageNumberPagination):
    page_size = 20
    max_page_size = 100


class LobbyListApi(APIView):
    # Read by drf-spectacular: the list is documented as the paginated page it is.
    pagination_class = LobbyPagination

    class LobbyFilter(serializers.Serializer):
        mode = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
        region = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
        q = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")

    class LobbyListItemOut(serializers.Serializer):
        id = serializers.UUIDField()
        name = serializers.CharField()
        mode = serializers.CharField()
        region = serializers.CharField()
        member_count = serializers.IntegerField()
        max_players = serializers.IntegerField()
        host = serializers.CharField(source="host.display_name")
        metadata = serializers.DictField()
        created_at = serializers.DateTimeField()

    class LobbyCreateIn(serializers.Serializer):
        name = TextField(min_length=1, max_length=64, validators=[_display_name])
        max_players = JsonIntegerField(
            min_value=2,
            default=_default_max_players,
            help_text="2 to LOBBY_MAX_PLAYERS; default 8, or LOBBY_MAX_PLAYERS if lower",
        )
        visibility = serializers.ChoiceField(
            choices=Lobby.Visibility.choices, default=Lobby.Visibility.PUBLIC
        )
        mode = TextField(max_length=32, default="", allow_blank=True, validators=[_slug])
        region = TextField(max_length=32, default="", allow_blank=True, validators=[_slug])
        metadata = serializers.DictField(
            default=dict, validators=[_metadata], error_messages=OBJECT_ONLY
        )
        joinable_after_start = JsonBooleanField(default=True)

        def validate_max_players(self, value):
            if value > settings.LOBBY_MAX_PLAYERS:
                raise serializers.ValidationError(f"At most {settings.LOBBY_MAX_PLAYERS}.")
            return value

    @extend_schema(
        parameters=[LobbyFilter, etags.IF_NONE_MATCH],
        responses={200: LobbyListItemOut(many=True), **etags.NOT_MODIFIED},
    )
    def get(self, request):
        filters = self.LobbyFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        lobbies = selectors.lobby_list(**filters.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(lobbies, request, view=self)
        etag = etags.lobby_list_etag(
            url=request.build_absolute_uri(),
            count=paginator.page.paginator.count,
            page=[(lobby.pk, lobby.version) for lobby in page],
        )
        if etags.not_modified(request.headers.get("If-None-Match"), etag):
            return etags.not_modified_response(etag)
        answer = paginator.get_paginated_response(self.LobbyListItemOut(page, many=True).data)
        answer["ETag"] = etag
        return answer

    @extend_schema(
        request=LobbyCreateIn,
        responses={
            201: LobbyDetailOut,
            **errors(e409="`already_in_lobby`, `busy`"),
        },
    )
    def post(self, request):
        data = self.LobbyCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data, name=_display_name(data.validated_data["name"]))
        lobby = services.lobby_create(player=request.player, ip=client_ip(request), **values)
        return Response(_detail(lobby, request.player), status=status.HTTP_201_CREATED)


class LobbyDetailApi(APIView):
    @extend_schema(
        parameters=[etags.IF_NONE_MATCH],
        responses={
            200: LobbyDetailOut,
            **etags.NOT_MODIFIED,
            **errors(e404="`lobby_not_found`: no such lobby, or a private one you are not in"),
        },
    )
    def get(self, request, lobby_id):
        lobby = selectors.lobby_get_visible(lobby_id=lobby_id, player=request.player)
        etag = etags.lobby_etag(
            lobby_id=lobby.pk, version=lobby.version, player_id=request.player.pk
        )
        if etags.not_modified(request.headers.get("If-None-Match"), etag):
            return etags.not_modified_response(etag)
        answer = Response(_detail(lobby, request.player))  # members read after the version
        answer["ETag"] = etag
        return answer


class LobbyJoinApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: LobbyDetailOut,
            **errors(
                e404="`lobby_not_found`: no such lobby, or a private one you are not in",
                e403="`kicked`",
                e409="`already_in_lobby`, `lobby_closed`, `lobby_started`, `lobby_full`, `busy`",
            ),
        },
    )
    def post(self, request, lobby_id):
        lobby = services.lobby_join(lobby_id=lobby_id, player=request.player, ip=client_ip(request))
        return Response(_detail(lobby, request.player))


class LobbyJoinByCodeApi(APIView):
    throttle_classes = [JoinCodeThrottle, PlayerThrottle, IpThrottle]

    class JoinByCodeIn(serializers.Serializer):
        code = TextField(min_length=1, max_length=16)

    @extend_schema(
        request=JoinByCodeIn,
        responses={
            200: LobbyDetailOut,
            **errors(
                e404="`wrong_code`: no open lobby has this code",
                e403="`kicked`",
                e409="`already_in_lobby`, `lobby_closed`, `lobby_started`, `lobby_full`, `busy`",
            ),
        },
        operation_id="v1_lobbies_join_by_code",
    )
    def post(self, request):
        data = self.JoinByCodeIn(data=request.data)
        data.is_valid(raise_exception=True)
        lobby = services.lobby_join_by_code(
            code=data.validated_data["code"], player=request.player, ip=client_ip(request)
        )
        return Response(_detail(lobby, request.player))


class LobbyLeaveApi(APIView):
    @extend_schema(
        request=None,
        responses={
            204: None,
            **errors(
                e404="`lobby_not_found`: no such lobby, or a private one you are not in",
                e403="`not_a_member`",
                e409="`lobby_closed`, `busy`",
            ),
        },
    )
    def post(self, request, lobby_id):
        services.lobby_leave(lobby_id=lobby_id, player=request.player)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LobbyReadyApi(APIView):
    class ReadyIn(serializers.Serializer):
        ready = JsonBooleanField()

    @extend_schema(
        request=ReadyIn,
        responses={
            200: LobbyDetailOut,
            **errors(
                e404="`lobby_not_found`: no such lobby, or a private one you are not in",
                e403="`not_a_member`",
                e409="`lobby_closed`, `wrong_state`, `busy`",
            ),
        },
    )
    def post(self, request, lobby_id):
        data = self.ReadyIn(data=request.data)
        data.is_valid(raise_exception=True)
        lobby = services.lobby_set_ready(
            lobby_id=lobby_id,
            player=request.player,
            ready=data.validated_data["ready"],
            ip=client_ip(request),
        )
        return Response(_detail(lobby, request.player))


class TargetSerializer(serializers.Serializer):
    player_id = JsonIntegerField(min_value=1)


class LobbyKickApi(APIView):
    @extend_schema(
        request=TargetSerializer,
        responses={
            200: LobbyDetailOut,
            **errors(
                e404="`lobby_not_found`, `target_not_in_lobby`",
                e403="`not_a_member`, `not_host`",
                e409="`lobby_closed`, `cannot_kick_self`, `busy`",
            ),
        },
    )
    def post(self, request, lobby_id):
        data = TargetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lobby = services.lobby_kick(
            lobby_id=lobby_id, player=request.player, target_id=data.validated_data["player_id"]
        )
        return Response(_detail(lobby, request.player))


class LobbyTransferHostApi(APIView):
    @extend_schema(
        request=TargetSerializer,
        responses={
            200: LobbyDetailOut,
            **errors(
                e404="`lobby_not_found`, `target_not_in_lobby`",
                e403="`not_a_member`, `not_host`",
                e409="`lobby_closed`, `wrong_state`, `busy`",
            ),
        },
    )
    def post(self, request, lobby_id):
        data = TargetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lobby = services.lobby_transfer_host(
            lobby_id=lobby_id, player=request.player, target_id=data.validated_data["player_id"]
        )
        return Response(_detail(lobby, request.player))


class LobbyStartApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: LobbyDetailOut,
            **errors(
                e404="`lobby_not_found`: no such lobby, or a private one you are not in",
                e403="`not_a_member`, `not_host`",
                e409="`lobby_closed`, `wrong_state`, `not_enough_players`, `not_ready`, `busy`",
            ),
        },
    )
    def post(self, request, lobby_id):
        lobby = services.lobby_start(lobby_id=lobby_id, player=request.player)
        return Response(_detail(lobby, request.player))


class LobbyEndApi(APIView):
    @extend_schema(
        request=None,
        responses={
            204: None,
            **errors(
                e404="`lobby_not_found`: no such lobby, or a private one you are not in",
                e403="`not_a_member`, `not_host`",
                e409="`lobby_closed`, `busy`",
            ),
        },
    )
    def post(self, request, lobby_id):
        services.lobby_end(lobby_id=lobby_id, player=request.player)
        return Response(status=status.HTTP_204_NO_CONTENT)
