"""Ratings API v1 (design.md §4): results, leaderboards, the player's own ratings. Thin views."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import errors
from lobby.apis import MeApi, PlayerOut
from lobby.throttles import PlayerThrottle
from ratings import selectors, services
from ratings.models import MatchResult


class RatingOut(serializers.Serializer):
    leaderboard = serializers.CharField()
    mu = serializers.FloatField(help_text="estimated skill (OpenSkill mu; a new player: 1500)")
    sigma = serializers.FloatField(help_text="uncertainty of mu (a new player: 500)")
    ordinal = serializers.FloatField(help_text="displayed rating: mu - 3 sigma")
    games = serializers.IntegerField()


class PlayerWithRatingsOut(PlayerOut):
    ratings = RatingOut(many=True, source="rating_list")


class PlayerMeApi(MeApi):
    """`GET /api/v1/players/me` with the player's ratings. Routed by config/urls.py in place of
    lobby's view: lobby sits below ratings and may not import it (design.md §1)."""

    @extend_schema(responses=PlayerWithRatingsOut)
    def get(self, request):
        player = request.player
        player.rating_list = selectors.player_ratings(player=player)
        return Response(PlayerWithRatingsOut(player).data)


class TeamPlacement(serializers.Serializer):
    players = serializers.ListField(
        child=serializers.IntegerField(), min_length=1, max_length=64, help_text="player ids"
    )
    rank = serializers.IntegerField(min_value=1, max_value=64, help_text="1 = first; ties share")


class ResultOut(serializers.Serializer):
    lobby_id = serializers.UUIDField()
    leaderboard = serializers.CharField()
    state = serializers.ChoiceField(choices=MatchResult.State.choices)
    roster = serializers.ListField(child=serializers.IntegerField())
    teams = serializers.JSONField(allow_null=True, help_text="the matched teams, if matched")
    reported = serializers.ListField(child=serializers.IntegerField())
    placements = TeamPlacement(many=True, allow_null=True)
    quality = serializers.FloatField(
        allow_null=True, help_text="predicted match quality, 0..1 (1: equal sides, certain ratings)"
    )
    decide_by = serializers.DateTimeField()


class ResultApi(APIView):
    throttle_classes = [PlayerThrottle]

    class ResultIn(serializers.Serializer):
        teams = TeamPlacement(many=True, help_text="every player of the match, once")

    @extend_schema(
        request=ResultIn,
        responses={
            200: ResultOut,
            # Refusals in the error shape (config.openapi documents the framework's own).
            **errors(
                e404="`lobby_not_found`",
                e403="`not_a_player`",
                e409="`not_rated`, `not_started`, `already_reported`, `result_final`",
            ),
        },
    )
    def post(self, request, lobby_id):
        data = self.ResultIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.result_report(
            lobby_id=lobby_id, player=request.player, teams=data.validated_data["teams"]
        )
        return Response(ResultOut(services.result_snapshot(result)).data)

    @extend_schema(responses={200: ResultOut})
    def get(self, request, lobby_id):
        result = selectors.result_for_member(lobby_id=lobby_id, player=request.player)
        return Response(ResultOut(services.result_snapshot(result)).data)


class LeaderboardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class LeaderboardApi(APIView):
    pagination_class = LeaderboardPagination

    class EntryOut(serializers.Serializer):
        rank = serializers.IntegerField()
        player_id = serializers.IntegerField()
        display_name = serializers.CharField(source="player.display_name")
        ordinal = serializers.FloatField()
        mu = serializers.FloatField()
        sigma = serializers.FloatField()
        games = serializers.IntegerField()

    @extend_schema(responses=EntryOut(many=True))
    def get(self, request, name):
        board = selectors.leaderboard_get(name=name)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            selectors.leaderboard_ratings(leaderboard=board), request, view=self
        )
        first = (paginator.page.number - 1) * paginator.get_page_size(request) + 1
        for n, rating in enumerate(page):
            rating.rank = first + n
        response = paginator.get_paginated_response(self.EntryOut(page, many=True).data)
        response.data["leaderboard"] = {"name": board.name, "title": board.title or board.name}
        return response
