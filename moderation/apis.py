"""The chat, mute and report endpoints (docs/api.md "Chat and moderation"): thin DRF views.

Limits are the serializers' and the throttles': a message is 1-500 characters of text without
control characters (the input policy, config/inputs.py, refuses NUL and lone surrogates before
this); a player sends at most THROTTLE_CHAT lines (20/min) and THROTTLE_CHAT_BURST (3/s), and
files at most THROTTLE_REPORT reports (10/hour). Every refusal has the API's error shape.
"""

import re

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.inputs import TextField
from lobby.throttles import IpThrottle, PlayerThrottle
from moderation import selectors, services
from moderation.models import MESSAGE_MAX_LENGTH, NOTE_MAX_LENGTH, Report
from moderation.throttles import ChatBurstThrottle, ChatThrottle, ReportThrottle

# Control characters (C0, DEL, C1) and the bidirectional overrides and isolates that make a
# line read differently from what it holds (a name that seems to say something else). Zero-width
# joiners stay: emoji sequences need them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _chat_text(value: str) -> str:
    if _CONTROL.search(value):
        raise serializers.ValidationError(
            "Control characters (line breaks, tabs, direction overrides) are not allowed."
        )
    if not value.strip():
        raise serializers.ValidationError("Write something first.")
    return value


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(description=description)


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    lobby_id = serializers.UUIDField()
    sender_id = serializers.IntegerField()
    display_name = serializers.CharField()
    text = serializers.CharField(help_text="plain text: render it as text, never as HTML")
    created_at = serializers.DateTimeField()


_CHAT_ERRORS = {
    400: _error("`invalid`: empty, longer than 500 characters, or control characters"),
    403: _error("`not_a_member`; `banned` (with `banned_until`, null for good, and `reason`)"),
    404: _error("`lobby_not_found` (also for a private lobby the caller is not in)"),
    409: _error("`lobby_closed`"),
    429: _error("`throttled`: THROTTLE_CHAT (20/min) or THROTTLE_CHAT_BURST (3/s) per player"),
}


class LobbyMessagesApi(APIView):
    throttle_classes = [PlayerThrottle, IpThrottle]

    class MessageIn(serializers.Serializer):
        text = TextField(
            min_length=1,
            max_length=MESSAGE_MAX_LENGTH,
            trim_whitespace=True,
            validators=[_chat_text],
            help_text=f"1-{MESSAGE_MAX_LENGTH} characters, no control characters",
        )

    class RecentOut(serializers.Serializer):
        messages = MessageOut(many=True)

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles += [ChatBurstThrottle(), ChatThrottle()]
        return throttles

    @extend_schema(
        summary="The lobby's last 50 chat messages, oldest first, without muted senders",
        responses={200: RecentOut, **{k: v for k, v in _CHAT_ERRORS.items() if k in (403, 404)}},
    )
    def get(self, request, lobby_id):
        messages = selectors.chat_recent(lobby_id=lobby_id, player=request.player)
        return Response(self.RecentOut({"messages": [m.as_data() for m in messages]}).data)

    @extend_schema(
        summary="Say something in the lobby: every member gets a `lobby.message` event",
        request=MessageIn,
        responses={201: MessageOut, **_CHAT_ERRORS},
    )
    def post(self, request, lobby_id):
        data = self.MessageIn(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.chat_post(
            lobby_id=lobby_id, player=request.player, text=data.validated_data["text"]
        )
        return Response(MessageOut(message.as_data()).data, status=status.HTTP_201_CREATED)


class MuteOut(serializers.Serializer):
    player_id = serializers.IntegerField(source="muted_id")
    display_name = serializers.CharField(source="muted.display_name")
    created_at = serializers.DateTimeField()


class MuteListApi(APIView):
    class MuteIn(serializers.Serializer):
        player_id = serializers.IntegerField(min_value=1)

    @extend_schema(summary="Players the caller muted", responses={200: MuteOut(many=True)})
    def get(self, request):
        return Response(MuteOut(selectors.mutes_of(player=request.player), many=True).data)

    @extend_schema(
        summary="Mute a player: the caller's stream and page stop showing its messages",
        request=MuteIn,
        responses={
            201: MuteOut,
            400: _error("`invalid`; `cannot_mute_self`"),
            404: _error("`player_not_found`"),
            409: _error(f"`too_many_mutes` (at most {services.MAX_MUTES})"),
        },
    )
    def post(self, request):
        data = self.MuteIn(data=request.data)
        data.is_valid(raise_exception=True)
        mute = services.mute_create(
            player=request.player, target_id=data.validated_data["player_id"]
        )
        return Response(MuteOut(mute).data, status=status.HTTP_201_CREATED)


class MuteDetailApi(APIView):
    @extend_schema(summary="Unmute a player (idempotent)", responses={204: None})
    def delete(self, request, player_id):
        services.mute_delete(player=request.player, target_id=player_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReportCreateApi(APIView):
    throttle_classes = [ReportThrottle, PlayerThrottle, IpThrottle]

    class ReportIn(serializers.Serializer):
        player_id = serializers.IntegerField(min_value=1)
        reason = serializers.ChoiceField(choices=Report.Reason.choices)
        note = TextField(max_length=NOTE_MAX_LENGTH, required=False, allow_blank=True, default="")

    class ReportOut(serializers.Serializer):
        id = serializers.IntegerField()
        player_id = serializers.IntegerField(source="reported_id")
        reason = serializers.CharField()
        status = serializers.CharField()
        evidence_messages = serializers.SerializerMethodField()
        created_at = serializers.DateTimeField()

        def get_evidence_messages(self, report) -> int:
            return len(report.evidence)

    @extend_schema(
        summary="Report a player of this lobby; its last 20 messages go along as evidence",
        request=ReportIn,
        responses={
            201: ReportOut,
            400: _error("`invalid` (reason not in the list, note over 1000); `cannot_report_self`"),
            403: _error("`not_a_member`"),
            404: _error("`lobby_not_found`; `target_not_in_lobby`"),
            409: _error("`already_reported`: one open report per reporter and player"),
            429: _error("`throttled`: THROTTLE_REPORT (10/hour) per player"),
        },
    )
    def post(self, request, lobby_id):
        data = self.ReportIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        report = services.report_create(
            lobby_id=lobby_id,
            reporter=request.player,
            target_id=values["player_id"],
            reason=values["reason"],
            note=values["note"],
        )
        return Response(self.ReportOut(report).data, status=status.HTTP_201_CREATED)
