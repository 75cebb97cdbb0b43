"""The HTTP side: POST/GET result, the leaderboard page, players/me with ratings, the schema."""

import pytest

from ratings.models import Leaderboard, Rating
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


def _post(client, lobby, teams):
    return client.post(f"/api/v1/lobbies/{lobby.pk}/result", {"teams": teams}, format="json")


def test_members_report_over_http_and_see_the_result(players, matched_lobby, client_for):
    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    teams = [{"players": [a.pk], "rank": 1}, {"players": [b.pk], "rank": 2}]
    first = _post(client_for(a), lobby, teams)
    assert first.status_code == 200, first.content
    assert first.json()["state"] == "pending" and first.json()["reported"] == [a.pk]
    assert _post(client_for(a), lobby, teams).status_code == 200  # idempotent
    second = _post(client_for(b), lobby, teams)
    body = second.json()
    assert body["state"] == "confirmed" and body["leaderboard"] == "ranked"
    assert body["placements"] == teams and 0 < body["quality"] < 1
    seen = client_for(b).get(f"/api/v1/lobbies/{lobby.pk}/result").json()
    assert seen["state"] == "confirmed"


def test_report_errors_are_json_with_fitting_statuses(players, matched_lobby, client_for):
    a, b = players(2)
    outsider = PlayerFactory()
    lobby = matched_lobby([[a], [b]])
    win = [{"players": [a.pk], "rank": 1}, {"players": [b.pk], "rank": 2}]
    loss = [{"players": [b.pk], "rank": 1}, {"players": [a.pk], "rank": 2}]
    assert _post(client_for(outsider), lobby, win).status_code == 404
    bad = client_for(a).post(f"/api/v1/lobbies/{lobby.pk}/result", {"teams": "x"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"]
    assert _post(client_for(a), lobby, [{"players": [a.pk], "rank": 1}]).status_code == 400
    assert _post(client_for(a), lobby, win).status_code == 200
    changed = _post(client_for(a), lobby, loss)
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "already_reported"
    assert client_for(outsider).get(f"/api/v1/lobbies/{lobby.pk}/result").status_code == 404
    anonymous = _post(client_for(a).__class__(), lobby, win)
    assert anonymous.status_code in (401, 403)


def test_leaderboard_ranks_by_displayed_rating_and_pages(client_for):
    board = Leaderboard.objects.create(name="ranked", title="Ranked")
    players = [PlayerFactory() for _ in range(5)]
    for n, player in enumerate(players):
        Rating.objects.create(
            leaderboard=board,
            player=player,
            mu=1500 + n * 10,
            sigma=100,
            ordinal=1200 + n * 10,
            games=3,
        )
    Rating.objects.create(leaderboard=board, player=PlayerFactory(), games=0)  # never played
    client = client_for(players[0])
    page1 = client.get("/api/v1/leaderboards/ranked?page_size=2").json()
    assert page1["count"] == 5 and page1["leaderboard"] == {"name": "ranked", "title": "Ranked"}
    assert [e["player_id"] for e in page1["results"]] == [players[4].pk, players[3].pk]
    assert [e["rank"] for e in page1["results"]] == [1, 2]
    page2 = client.get("/api/v1/leaderboards/ranked?page_size=2&page=2").json()
    assert [e["rank"] for e in page2["results"]] == [3, 4]
    assert page2["results"][0]["ordinal"] == 1220 and page2["results"][0]["display_name"]


def test_unknown_leaderboard_is_a_json_404(client_for):
    client = client_for(PlayerFactory())
    for path in ("/api/v1/leaderboards/nope", "/api/v1/leaderboards/not a slug!"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"]
    Leaderboard.objects.create(name="ranked")
    assert client.get("/api/v1/leaderboards/ranked?page=9").status_code == 404


def test_players_me_lists_the_players_ratings(players, matched_lobby, client_for):
    a, b = players(2)
    me = client_for(a).get("/api/v1/players/me").json()
    assert me["id"] == a.pk and me["ratings"] == []
    lobby = matched_lobby([[a], [b]])
    teams = [{"players": [a.pk], "rank": 1}, {"players": [b.pk], "rank": 2}]
    _post(client_for(a), lobby, teams)
    _post(client_for(b), lobby, teams)
    (rating,) = client_for(a).get("/api/v1/players/me").json()["ratings"]
    assert rating["leaderboard"] == "ranked" and rating["games"] == 1
    assert rating["mu"] > 1500 and rating["ordinal"] == pytest.approx(
        rating["mu"] - 3 * rating["sigma"]
    )


def test_schema_documents_the_ratings_endpoints(client_for):
    schema = client_for(PlayerFactory()).get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "post" in paths["/api/v1/lobbies/{lobby_id}/result"]
    assert "/api/v1/leaderboards/{name}" in paths
    me = paths["/api/v1/players/me"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "PlayerWithRatings" in me["schema"]["$ref"]
