"""The matcher's explanations as data (matchmaking/explanations.py): for every kind of blocker the
real matcher writes, the rule, its type, its parameters at the ticket's step and the counts."""

import pytest
from rest_framework.test import APIClient

from matchmaking import services
from matchmaking.explanations import explanation_data
from matchmaking.matcher import form_matches
from matchmaking.models import Profile
from tests.matchmaking import test_services
from tests.matchmaking.test_matcher import NOW, ticket
from tests.matchmaking.test_matcher import profile as rules_of
from tests.matchmaking.test_services import _player, _queue


@pytest.fixture
def queue_profile():
    """A 2v2 queue on skill, as test_services has it."""
    return Profile.objects.create(name="teams", title="Teams", rules=test_services.TEAMS_2X2)


def _explained(tickets, rules, tid="a"):
    result = form_matches(tickets, rules, NOW)
    why = result.unmatched[tid]
    return explanation_data(blocked_by=why.message, step=why.step, rules=rules)


def test_a_number_rule_names_itself_its_window_at_the_step_and_the_counts():
    rules = rules_of(
        skill=("number_difference", {"max_difference": 10}),
        expansions={"30": {"skill": {"max_difference": 50}}},
    )
    data = _explained([ticket("a", skill=1500), ticket("b", skill=1600)], rules)
    assert data | {"text": None} == {
        "kind": "rule", "rule": "skill", "type": "number_difference", "step": 0,
        "parameters": {"max_difference": 10}, "problem": "too_few", "needed": 1, "found": 0,
        "quality": None, "text": None,
    }  # fmt: skip
    assert data["text"].startswith("number_difference(skill)")
    waited = [ticket("a", wait=40, skill=1500), ticket("b", wait=40, skill=1600)]
    later = _explained(waited, rules)
    assert (later["step"], later["parameters"]) == (1, {"max_difference": 50})


def test_too_few_players_is_the_player_count_rule_with_how_many_are_needed():
    rules = rules_of(team_count=2, min_team=2)
    data = _explained([ticket("a")], rules)
    assert (data["kind"], data["rule"], data["type"]) == ("rule", "match_size", "player_count")
    assert (data["needed"], data["found"]) == (3, 0)
    assert data["parameters"] == {"team_count": 2, "min_team_size": 2, "max_team_size": 2}


def test_other_rule_types_are_named_by_type_and_rule():
    rules = rules_of(
        mode=("string_equality", {}),
        maps=("intersection", {"overlap": 1}),
        ping=("latencies", {"max_latency": 100, "difference": 50}),
    )
    mode = _explained(
        [ticket("a", mode="ctf", maps=["x"], ping={"eu": 10}),
         ticket("b", mode="dm", maps=["x"], ping={"eu": 10})],
        rules,
    )  # fmt: skip
    assert (mode["type"], mode["rule"], mode["kind"]) == ("string_equality", "mode", "rule")
    ping = _explained(
        [ticket("a", mode="ctf", maps=["x"], ping={"eu": 10}),
         ticket("b", mode="ctf", maps=["x"], ping={"us": 10})],
        rules,
    )  # fmt: skip
    assert (ping["type"], ping["rule"]) == ("latencies", "ping")
    assert ping["parameters"] == {"max_latency": 100, "difference": 50}


def test_a_party_too_large_and_no_usable_region_are_problems_of_their_own():
    rules = rules_of(team_count=2, min_team=2)
    big = _explained([ticket("big", players=["a", "b", "c"]), ticket("x")], rules, tid="big")
    assert (big["type"], big["problem"], big["party_size"]) == (
        "player_count", "party_too_large", 3,
    )  # fmt: skip
    assert big["parameters"]["max_team_size"] == 2
    far = _explained(
        [ticket("a", beacons={"eu": 180, "us": 250}), ticket("b", beacons={"eu": 20})],
        rules_of(beacons=("latencies", {"max_latency": 150, "difference": 30})),
    )
    assert (far["type"], far["problem"], far["best_region"], far["best_ms"]) == (
        "latencies", "no_region", "eu", 180.0,
    )  # fmt: skip
    assert far["parameters"]["max_latency"] == 150


def test_no_pass_yet_invalid_attributes_and_unknown_lines():
    rules = rules_of(skill=("number_difference", {"max_difference": 10}))
    assert explanation_data(blocked_by="", step=0, rules=rules)["kind"] == "waiting"
    invalid = explanation_data(
        blocked_by="attributes no longer fit this profile: skill is required", step=0, rules=rules
    )
    assert (invalid["kind"], invalid["rule"], invalid["type"]) == (
        "invalid", "skill", "number_difference",
    )  # fmt: skip
    group = explanation_data(blocked_by="no match yet: other players pass", step=0, rules=rules)
    assert group["kind"] == "no_group"
    other = explanation_data(blocked_by="something new", step=0, rules=None)
    assert (other["kind"], other["text"]) == ("other", "something new")


# -- served: GET ticket carries it, as data -------------------------------------------------------


@pytest.mark.django_db
def test_a_searching_ticket_is_served_with_its_explanation_as_data(queue_profile):
    player, key = _player()
    ticket = _queue(player, queue_profile, 100)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    url = f"/api/v1/matchmaking/tickets/{ticket.pk}"
    assert api.get(url).json()["explanation"]["kind"] == "waiting"  # no pass yet

    services.matchmaking_pass(profile=queue_profile)

    shown = api.get(url).json()
    explanation = shown["explanation"]
    assert explanation["text"] == shown["blocked_by"]
    assert (explanation["kind"], explanation["rule"], explanation["type"]) == (
        "rule", "match_size", "player_count",
    )  # fmt: skip
    assert (explanation["step"], explanation["found"]) == (0, 0)
    assert explanation["needed"] >= 1 and explanation["parameters"]["team_count"] >= 1
