from django.urls import path

from moderation import apis

app_name = "moderation"

urlpatterns = [
    path(
        "lobbies/<uuid:lobby_id>/messages", apis.LobbyMessagesApi.as_view(), name="lobby-messages"
    ),
    path("lobbies/<uuid:lobby_id>/reports", apis.ReportCreateApi.as_view(), name="lobby-reports"),
    path("players/me/mutes", apis.MuteListApi.as_view(), name="mutes"),
    path("players/me/mutes/<int:player_id>", apis.MuteDetailApi.as_view(), name="mute-detail"),
]
