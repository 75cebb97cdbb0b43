from django.urls import path

from ratings import apis

app_name = "ratings"

urlpatterns = [
    path("lobbies/<uuid:lobby_id>/result", apis.ResultApi.as_view(), name="lobby-result"),
    path("leaderboards/<slug:name>", apis.LeaderboardApi.as_view(), name="leaderboard"),
]
