"""The leaderboard pages (issue 14): every leaderboard, and one leaderboard's ranking.

Server-rendered, no script: a ranking changes only when a result stands, so a page made now is
current enough, and the templates escape every name. The views decide nothing: the ranking,
the ranks and the page size are the API's (ratings/selectors.py, `GET /api/v1/leaderboards/{name}`).
"""

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from lobby import services as lobby_services
from lobby.errors import NotFound
from lobby.pages import player_required
from ratings import selectors
from ratings.apis import LeaderboardPagination

PAGE_SIZE = LeaderboardPagination.page_size  # the API's: a page here is the same page there


@player_required
def leaderboards(request):
    """Every leaderboard, with how many players are ranked on it."""
    player = lobby_services.player_for_user(request.user)
    context = {"player": player, "leaderboards": selectors.leaderboard_list()}
    return render(request, "ratings/leaderboards.html", context)


@player_required
def leaderboard(request, name):
    """One leaderboard, ranked, a page at a time; the player's own row stands out, and when it
    is on another page the player's rank is said above the table, with a link to that page."""
    player = lobby_services.player_for_user(request.user)
    try:
        board = selectors.leaderboard_get(name=name)
    except NotFound:
        raise Http404("There is no such leaderboard.") from None
    # get_page, not page: a link to a page that has since emptied shows the last one.
    page = Paginator(selectors.leaderboard_ratings(leaderboard=board), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = list(page.object_list)
    for n, rating in enumerate(rows, start=page.start_index()):
        rating.rank = n
    mine = selectors.leaderboard_rank(leaderboard=board, player=player)
    context = {
        "player": player,
        "board": board,
        "page": page,
        "rows": rows,
        "mine": mine,
        "mine_on_page": mine is not None and any(r.pk == mine.pk for r in rows),
        "mine_page": (mine.rank - 1) // PAGE_SIZE + 1 if mine else None,
    }
    return render(request, "ratings/leaderboard.html", context)
