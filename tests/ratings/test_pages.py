"""The leaderboard pages: every leaderboard, one leaderboard ranked a page at a time (the API's
ranking and page size), the player's own row or own rank, a 404 for an unknown name, names
escaped. Server-rendered: these read the HTML a browser gets."""

import re

import pytest

from ratings import selectors
from ratings.models import Leaderboard, Rating
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


def _rate(board, player, ordinal, games=3):
    return Rating.objects.create(
        leaderboard=board, player=player, mu=ordinal + 300, sigma=100, ordinal=ordinal, games=games
    )


def _rows(html):
    """(rank, name, rating) of every row of the ranking, in order."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        (int(rank), name.strip(), int(rating))
        for rank, name, rating in re.findall(
            r'<td class="num">(\d+)</td>\s*<th scope="row">([^<]*)(?:<span[^>]*>You</span>)?</th>'
            r'\s*<td class="num"><strong>(-?\d+)</strong>',
            body,
        )
    ]


@pytest.fixture
def me(client):
    player = PlayerFactory(display_name="Me")
    client.force_login(player.user)
    return player


@pytest.fixture
def board():
    return Leaderboard.objects.create(name="ranked-1v1", title="Ranked 1v1")


def test_the_list_names_every_leaderboard_with_its_title_and_players(client, me, board):
    Leaderboard.objects.create(name="ranked-2v2")  # no title: its name stands in
    _rate(board, PlayerFactory(), 100)
    _rate(board, PlayerFactory(), 50, games=0)  # reset: not ranked

    response = client.get("/leaderboards/")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<a href="/leaderboards/ranked-1v1/">Ranked 1v1</a>' in html
    assert '<a href="/leaderboards/ranked-2v2/">ranked-2v2</a>' in html
    assert "1 player</p>" in html and "0 players</p>" in html
    assert 'href="/leaderboards/" aria-current="page">Leaderboards</a>' in html  # the nav


def test_a_leaderboard_ranks_by_rating_with_ties_to_who_got_there_first(client, me, board):
    first, tied_early, tied_late = PlayerFactory(), PlayerFactory(), PlayerFactory()
    _rate(board, tied_early, 300.4)
    _rate(board, first, 812.6)
    _rate(board, tied_late, 300.4)
    _rate(board, PlayerFactory(), 900, games=0)  # never played (reset): not on the board

    html = client.get("/leaderboards/ranked-1v1/").content.decode()

    assert '<h1 id="page-title">Ranked 1v1</h1>' in html
    assert _rows(html) == [
        (1, first.display_name, 813),
        (2, tied_early.display_name, 300),
        (3, tied_late.display_name, 300),
    ]
    assert "1113 ± 100" in html  # mu ± sigma, in the muted column
    assert "not on this leaderboard yet" in html  # Me has not played


def test_pages_hold_fifty_like_the_api_and_carry_on_ranking(client, me, board):
    players = [PlayerFactory(display_name=f"P{n:02}") for n in range(55)]
    for n, player in enumerate(players):
        _rate(board, player, 1000 - n)

    first = client.get("/leaderboards/ranked-1v1/").content.decode()
    second = client.get("/leaderboards/ranked-1v1/?page=2").content.decode()

    assert len(_rows(first)) == 50
    assert _rows(first)[0] == (1, "P00", 1000)
    assert _rows(second) == [(51 + n, f"P{50 + n}", 950 - n) for n in range(5)]
    assert "Page 2 of 2" in second and 'rel="prev" href="?page=1"' in second
    assert 'rel="next" href="?page=2"' in first
    api = client.get("/api/v1/leaderboards/ranked-1v1?page=2").json()
    assert [(e["rank"], e["display_name"]) for e in api["results"]] == [
        (rank, name) for rank, name, _ in _rows(second)
    ]


def test_the_players_own_row_stands_out_on_its_page(client, me, board):
    _rate(board, PlayerFactory(), 500)
    _rate(board, me, 400)

    html = client.get("/leaderboards/ranked-1v1/").content.decode()

    row = re.search(r'<tr id="me"[^>]*>(.*?)</tr>', html, re.S)
    assert row and 'class="ranking__me"' in row.group(0) and 'aria-current="true"' in row.group(0)
    assert "Me" in row.group(1) and ">You</span>" in row.group(1)
    assert html.count('id="me"') == 1
    assert 'id="my-rank"' not in html  # the row says it


def test_the_players_own_rank_is_said_above_the_table_when_on_another_page(client, me, board):
    for n in range(60):
        _rate(board, PlayerFactory(), 2000 - n)
    _rate(board, me, 1000, games=7)  # 61st

    html = client.get("/leaderboards/ranked-1v1/").content.decode()

    assert 'id="me"' not in html
    mine = re.search(r'<p id="my-rank"[^>]*>(.*?)</p>', html, re.S).group(1)
    assert "<strong>#61</strong>" in mine and "<strong>1000</strong>" in mine and "7 games" in mine
    assert 'href="?page=2#me"' in mine
    assert 'id="me"' in client.get("/leaderboards/ranked-1v1/?page=2").content.decode()


def test_an_unknown_leaderboard_is_a_404_page(client, me):
    response = client.get("/leaderboards/nope/")

    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]


def test_a_display_name_is_text_not_markup(client, me, board):
    _rate(board, PlayerFactory(display_name='<script>alert("x")</script>'), 10)

    html = client.get("/leaderboards/ranked-1v1/").content.decode()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_the_pages_want_a_player(client, board):
    response = client.get("/leaderboards/ranked-1v1/")

    assert response.status_code == 302 and response["Location"].startswith("/?next=")


def test_a_players_rank_follows_the_rankings_order(board):
    players = [PlayerFactory() for _ in range(6)]
    for player, ordinal in zip(players, [5, 9, 5, 1, 9, 5], strict=True):
        _rate(board, player, ordinal)

    listed = [r.player_id for r in selectors.leaderboard_ratings(leaderboard=board)]

    for player in players:
        assert selectors.leaderboard_rank(leaderboard=board, player=player).rank == (
            listed.index(player.pk) + 1
        )
    assert selectors.leaderboard_rank(leaderboard=board, player=PlayerFactory()) is None
