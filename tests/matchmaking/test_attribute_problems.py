"""Attribute problems as data: every `Problem` code comes from the case it names, with its
parameters, beside the unchanged English; the API answers both (`fields` and `problems`) for a
solo and a party ticket; the schema documents `problems` and lists every code; the queue page words
every code an input can get (the browser side: tests/e2e/test_queue_problems_browser.py)."""

import re
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from lobby import services as lobby_services
from matchmaking import services
from matchmaking.models import Profile, Ticket
from matchmaking.rules import (
    EXAMPLE_ATTRIBUTES,
    EXAMPLE_RULES,
    MAX_LIST_ITEMS,
    MAX_STRING_LENGTH,
    AttributesError,
    Problem,
    merge_party_attributes,
    validate_attributes,
)

TICKETS = "/api/v1/matchmaking/tickets"
QUEUE_JS = (
    Path(__file__).resolve().parents[2] / "matchmaking" / "static" / "matchmaking" / "queue.js"
)
KNOWN = ["beacons", "maps", "mode", "skill"]


def _with(**changes):
    return {**EXAMPLE_ATTRIBUTES, **changes}


def _without(name):
    return {key: value for key, value in EXAMPLE_ATTRIBUTES.items() if key != name}


def _validate(attributes):
    return lambda: validate_attributes(EXAMPLE_RULES, attributes)


def _merge(*members):
    return lambda: merge_party_attributes(EXAMPLE_RULES, list(members))


# (the code, what produces it, the attribute named, its parameters, its message as before codes)
CASES = [
    (Problem.NOT_OBJECT, _validate([1]), "", {}, "attributes must be an object"),
    (Problem.NO_MEMBERS, _merge(), "", {}, "a party needs at least one member"),
    (
        Problem.UNKNOWN,
        _validate(_with(elo=1200)),
        "elo",
        {"known": KNOWN},
        "is not used by this profile (known attributes: beacons, maps, mode, skill)",
    ),
    (
        Problem.MISSING,
        _validate(_without("skill")),
        "skill",
        {"rule_type": "number_difference"},
        "is missing (required by the number_difference rule)",
    ),
    (Problem.NOT_STRING, _validate(_with(mode=3)), "mode", {}, "must be a string"),
    (
        Problem.TOO_LONG,
        _validate(_with(mode="x" * (MAX_STRING_LENGTH + 1))),
        "mode",
        {"max_length": MAX_STRING_LENGTH},
        f"must be at most {MAX_STRING_LENGTH} characters",
    ),
    (Problem.NOT_NUMBER, _validate(_with(skill="1520")), "skill", {}, "must be a number"),
    (Problem.NOT_NUMBER, _validate(_with(skill=True)), "skill", {}, "must be a number"),
    (
        Problem.NOT_STRING_LIST,
        _validate(_with(maps=[])),
        "maps",
        {},
        "must be a non-empty list of strings",
    ),
    (
        Problem.NOT_STRING_LIST,
        _validate(_with(maps=["harbor", 7])),
        "maps",
        {},
        "must be a non-empty list of strings",
    ),
    (
        Problem.TOO_MANY_ITEMS,
        _validate(_with(maps=[f"m{i}" for i in range(MAX_LIST_ITEMS + 1)])),
        "maps",
        {"max_items": MAX_LIST_ITEMS},
        f"must have at most {MAX_LIST_ITEMS} items",
    ),
    (
        Problem.NOT_LATENCY_MAP,
        _validate(_with(beacons=[32])),
        "beacons",
        {},
        "must be a non-empty object of region -> milliseconds",
    ),
    (
        Problem.TOO_MANY_REGIONS,
        _validate(_with(beacons={f"r{i}": 10 for i in range(MAX_LIST_ITEMS + 1)})),
        "beacons",
        {"max_regions": MAX_LIST_ITEMS},
        f"must have at most {MAX_LIST_ITEMS} regions",
    ),
    (
        Problem.BAD_REGION_NAME,
        _validate(_with(beacons={"": 10})),
        "beacons",
        {},
        "must be keyed by region names",
    ),
    (
        Problem.BAD_LATENCY,
        _validate(_with(beacons={"us-east": 90, "eu-west": -3})),
        "beacons",
        {"region": "eu-west"},
        "must map each region to non-negative milliseconds ('eu-west' does not)",
    ),
    (
        Problem.PARTY_DISAGREE,
        _merge(_with(mode="ctf"), _with(mode="tdm")),
        "mode",
        {"values": ["ctf", "tdm"]},
        "party members disagree: 'ctf' vs 'tdm'",
    ),
    (
        Problem.PARTY_TOO_FEW_IN_COMMON,
        _merge(_with(maps=["a", "b"]), _with(maps=["c"])),
        "maps",
        {"in_common": 0, "need": 1},
        "party members have 0 values in common, need 1",
    ),
    (
        Problem.PARTY_NO_COMMON_REGION,
        _merge(_with(beacons={"eu": 10}), _with(beacons={"us": 10})),
        "beacons",
        {},
        "party members measured no region in common",
    ),
]
# Made by the service, not the rules: tested through the API below.
SERVICE_CODES = {Problem.SET_BY_SERVER}


@pytest.mark.parametrize(
    ("code", "produce", "name", "params", "message"),
    CASES,
    ids=[f"{case[0].value}-{i}" for i, case in enumerate(CASES)],
)
def test_each_problem_has_its_code_its_parameters_and_its_old_words(
    code, produce, name, params, message
):
    with pytest.raises(AttributesError) as exc:
        produce()

    assert list(exc.value.problems) == [name]
    assert exc.value.problems[name].as_dict() == {"code": code.value, **params}
    assert exc.value.errors == {name: message}


def test_every_code_has_a_case():
    assert {case[0] for case in CASES} | SERVICE_CODES == set(Problem)


def test_a_problem_takes_exactly_the_parameters_its_words_use():
    with pytest.raises(TypeError, match="too_long takes"):
        Problem.TOO_LONG.of()
    with pytest.raises(TypeError, match="must_be"):
        Problem.NOT_NUMBER.of(must_be="a number")


def test_several_problems_keep_the_order_of_their_messages():
    with pytest.raises(AttributesError) as exc:
        validate_attributes(EXAMPLE_RULES, {"elo": 1, "mode": 3, "skill": "x", "beacons": {}})

    order = ["elo", "mode", "skill", "maps", "beacons"]
    assert list(exc.value.problems) == list(exc.value.errors) == order
    assert [p.code for p in exc.value.problems.values()] == [
        Problem.UNKNOWN,
        Problem.NOT_STRING,
        Problem.NOT_NUMBER,
        Problem.MISSING,
        Problem.NOT_LATENCY_MAP,
    ]


# --- Through the API ---------------------------------------------------------------------------

SQUAD = {
    "initial": {
        "size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 2},
        },
        "mode": {"type": "string_equality"},
        "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
        "beacons": {"type": "latencies", "attributes": {"max_latency": 150, "difference": 100}},
    }
}
RATED = {
    "initial": {
        "size": SQUAD["initial"]["size"],
        "skill": {
            "type": "number_difference",
            "rating": "ranked-duel",
            "attributes": {"max_difference": 500},
        },
    }
}
BAD = {"mode": "x" * 201, "beacons": {"eu-west": -1}, "rank": "gold"}
EXPECTED_FIELDS = {
    "rank": "is not used by this profile (known attributes: beacons, mode, skill)",
    "mode": "must be at most 200 characters",
    "skill": "is missing (required by the number_difference rule)",
    "beacons": "must map each region to non-negative milliseconds ('eu-west' does not)",
}
EXPECTED_PROBLEMS = {
    "rank": {"code": "unknown", "known": ["beacons", "mode", "skill"]},
    "mode": {"code": "too_long", "max_length": 200},
    "skill": {"code": "missing", "rule_type": "number_difference"},
    "beacons": {"code": "bad_latency", "region": "eu-west"},
}


@pytest.fixture
def api_for(db):
    def make(name):
        player, key = lobby_services.player_create_guest(display_name=name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return player, client

    return make


@pytest.fixture
def squad(db):
    return Profile.objects.create(name="squad", title="Squad", rules=SQUAD, mode="ctf")


def _refused(client, profile, attributes):
    response = client.post(TICKETS, {"profile": profile, "attributes": attributes}, format="json")
    assert response.status_code == 400
    return response.json()["error"]


def test_a_ticket_refusal_carries_each_problems_words_and_code(squad, api_for):
    _, client = api_for("solo")

    error = _refused(client, "squad", BAD)

    assert error["code"] == "invalid"
    assert error["message"] == f"attributes.rank {EXPECTED_FIELDS['rank']}"
    assert error["fields"] == {"attributes": EXPECTED_FIELDS}
    assert error["problems"] == {"attributes": EXPECTED_PROBLEMS}
    assert list(error["problems"]["attributes"]) == list(error["fields"]["attributes"])
    assert not Ticket.objects.exists()


def test_a_party_ticket_refusal_carries_them_too(squad, api_for):
    leader, client = api_for("leader")
    friend, _ = api_for("friend")
    party = services.party_create(player=leader, ip="203.0.113.5")
    services.party_join(code=party.code, player=friend, ip="203.0.113.6")

    error = _refused(client, "squad", BAD)

    assert error["fields"] == {"attributes": EXPECTED_FIELDS}
    assert error["problems"] == {"attributes": EXPECTED_PROBLEMS}
    assert not Ticket.objects.exists()


def test_a_number_the_server_owns_is_refused_with_its_code_and_leaderboard(db, api_for):
    Profile.objects.create(name="duel", title="Duel", rules=RATED, mode="duel")
    _, client = api_for("eager")

    error = _refused(client, "duel", {"skill": 3000})

    assert error["message"] == "attributes.skill is set by the server from your ranked-duel rating"
    assert error["fields"] == {
        "attributes": {"skill": "is set by the server from your ranked-duel rating"}
    }
    assert error["problems"] == {
        "attributes": {"skill": {"code": "set_by_server", "leaderboard": "ranked-duel"}}
    }


def test_other_refusals_carry_no_problems(squad, api_for):
    _, client = api_for("solo")

    response = client.post(TICKETS, {"attributes": {}}, format="json")

    assert response.status_code == 400
    assert "problems" not in response.json()["error"]


def test_the_schema_documents_problems_and_lists_every_code(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    error = schema["components"]["schemas"]["Error"]["properties"]["error"]

    problems = error["properties"]["problems"]
    problem = problems["additionalProperties"]["additionalProperties"]
    assert problem["required"] == ["code"]
    assert set(problem["properties"]["code"]["enum"]) == {p.value for p in Problem}
    assert "`fields`" in problems["description"]


# --- The queue page ------------------------------------------------------------------------------

# Codes the page never words: the rules changed under it (it loads them again), or not its case.
NOT_WORDED = {
    Problem.UNKNOWN,
    Problem.SET_BY_SERVER,
    Problem.NOT_OBJECT,
    Problem.NO_MEMBERS,
    Problem.PARTY_DISAGREE,
    Problem.PARTY_TOO_FEW_IN_COMMON,
    Problem.PARTY_NO_COMMON_REGION,
}
PAGE_CODES = {"duplicate_region"}  # the page's own check, before any request


def test_the_queue_page_words_every_code_an_input_can_get_and_reads_no_english():
    # No JS test runner here (the browser tests drive the page): pin the table against the enum.
    script = QUEUE_JS.read_text()
    table = re.search(r"^const PROBLEM_WORDS = \{$(.*?)^\};$", script, re.M | re.S).group(1)
    worded = set(re.findall(r"^  (\w+):", table, re.M))

    assert worded == {p.value for p in set(Problem) - NOT_WORDED} | PAGE_CODES
    assert 'problem.code === "set_by_server"' in script
    problems_part = script[script.index("const PROBLEM_WORDS") : script.index("function fillForm")]
    assert ".exec(" not in problems_part and "startsWith(" not in problems_part
