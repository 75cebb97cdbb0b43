"""The queue page for a queue that rates from a leaderboard: the view hands the page the
player's rating there (a new player's when it has none) and where its leaderboard is; the page's
script shows it in place of an input and never sends the number (the browser test drives that:
tests/e2e/test_queue_browser.py)."""

import json
import re
from pathlib import Path

import pytest

from matchmaking.models import Profile
from ratings.models import Leaderboard, Rating
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
RATED = {
    "initial": {
        "size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
        },
        "skill": {
            "type": "number_difference",
            "rating": "ranked-1v1",
            "attributes": {"max_difference": 300},
        },
    }
}
TYPED = {
    "initial": {
        "size": RATED["initial"]["size"],
        "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
    }
}


def _config(client) -> dict:
    html = client.get("/queue/").content.decode()
    found = re.search(r'<script id="queue-config" type="application/json">(.*?)</script>', html)
    return json.loads(found.group(1))


@pytest.fixture
def me(client):
    player = PlayerFactory(display_name="Me")
    client.force_login(player.user)
    return player


def test_the_page_has_the_players_rating_on_a_rated_queues_leaderboard(client, me):
    Profile.objects.create(name="ranked-1v1", rules=RATED)
    Profile.objects.create(name="casual", rules=TYPED)
    board = Leaderboard.objects.create(name="ranked-1v1", title="Ranked 1v1")
    Rating.objects.create(
        leaderboard=board, player=me, mu=1700.0, sigma=200.0, ordinal=1100.0, games=4
    )

    config = _config(client)

    assert config["ratings"] == {
        "ranked-1v1": {
            "leaderboard": "ranked-1v1",
            "title": "Ranked 1v1",
            "listed": True,
            "mu": 1700.0,
            "sigma": 200.0,
            "ordinal": 1100.0,
            "games": 4,
        }
    }
    assert config["leaderboardsUrl"] == "/leaderboards/"


def test_a_player_who_never_played_shows_as_new_even_before_the_leaderboard_exists(client, me):
    Profile.objects.create(name="ranked-1v1", rules=RATED)

    config = _config(client)

    assert config["ratings"]["ranked-1v1"] == {
        "leaderboard": "ranked-1v1",
        "title": "ranked-1v1",
        "listed": False,  # made by the first result: no page to link to yet
        "mu": 1500.0,
        "sigma": 500.0,
        "ordinal": 0.0,
        "games": 0,
    }


def test_queues_that_rate_nothing_hand_the_page_no_ratings(client, me):
    Profile.objects.create(name="casual", rules=TYPED)
    Profile.objects.create(name="closed", rules=RATED, enabled=False)

    assert _config(client)["ratings"] == {}


def test_the_script_shows_a_rated_number_instead_of_asking_for_it():
    # The markup is the script's (no build step, no JS test runner): pin the branches that keep
    # a rated number out of the form and out of the request.
    queue = (ROOT / "matchmaking" / "static" / "matchmaking" / "queue.js").read_text()
    words = (ROOT / "matchmaking" / "static" / "matchmaking" / "rules-words.js").read_text()
    assert "if (spec.rating) rule.rating = spec.rating;" in words
    assert "if (rule.rating) return buildRatedField(rule, index, id, help);" in queue
    assert "if (rule.rating) return; // the server's to set" in queue
    assert "config.ratings[rule.rating]" in queue
