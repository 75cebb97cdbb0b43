from django.urls import path

from lobby import apis, event_api

app_name = "lobby"

urlpatterns = [
    path("players/guest", apis.GuestCreateApi.as_view(), name="player-guest"),
    path("players/me", apis.MeApi.as_view(), name="player-me"),
    path("players/me/assignment", apis.AssignmentApi.as_view(), name="player-assignment"),
    path("players/me/events", event_api.player_events, name="player-events"),
    path("lobbies", apis.LobbyListApi.as_view(), name="lobby-list"),
    path("lobbies/join", apis.LobbyJoinByCodeApi.as_view(), name="lobby-join-code"),
    path("lobbies/<uuid:lobby_id>", apis.LobbyDetailApi.as_view(), name="lobby-detail"),
    path("lobbies/<uuid:lobby_id>/join", apis.LobbyJoinApi.as_view(), name="lobby-join"),
    path("lobbies/<uuid:lobby_id>/leave", apis.LobbyLeaveApi.as_view(), name="lobby-leave"),
    path("lobbies/<uuid:lobby_id>/ready", apis.LobbyReadyApi.as_view(), name="lobby-ready"),
    path("lobbies/<uuid:lobby_id>/kick", apis.LobbyKickApi.as_view(), name="lobby-kick"),
    path(
        "lobbies/<uuid:lobby_id>/transfer-host",
        apis.LobbyTransferHostApi.as_view(),
        name="lobby-transfer-host",
    ),
    path("lobbies/<uuid:lobby_id>/start", apis.LobbyStartApi.as_view(), name="lobby-start"),
    path("lobbies/<uuid:lobby_id>/end", apis.LobbyEndApi.as_view(), name="lobby-end"),
]
