import pytest

from lobby import services as lobby_services
from tests.lobby.conftest import (  # noqa: F401  (fixtures shared with the lobby tests)
    _fresh_throttle_counts,
    client_for,
    events_of,
    lobby_of,
    start_match,
)
from tests.lobby.factories import PlayerFactory


@pytest.fixture
def players():
    """`players(n)`: n fresh players."""
    return lambda n: [PlayerFactory() for _ in range(n)]


@pytest.fixture
def matched_lobby():
    """`matched_lobby(teams, profile="ranked")`: a lobby as the matcher makes it (private, full,
    started at once, metadata with its queue and teams); its relay stays pending."""

    def make(teams, profile="ranked"):
        seats = [(p.pk, f"192.0.2.{p.pk % 250 + 1}") for team in teams for p in team]
        return lobby_services.lobby_create_for_match(
            name=f"{profile} match",
            mode=profile,
            region="",
            seats=seats,
            host_id=teams[0][0].pk,
            metadata={"profile": profile, "teams": [[p.pk for p in team] for team in teams]},
        )

    return make


def placements(*ranked_teams):
    """placements([a, b], [c, d]) -> a, b first; c, d second. Pass (rank, [players]) for ties."""
    out = []
    for n, team in enumerate(ranked_teams, start=1):
        rank, members = team if isinstance(team, tuple) else (n, team)
        out.append({"players": [p.pk for p in members], "rank": rank})
    return out
