"""The input policy (config/inputs.py): every bad input the issue found answers a clear 400.

Each case was a 500 on PostgreSQL before (`make test-services` runs them there): NUL and lone
surrogates reach text and jsonb columns, deep JSON blows the parser's recursion, a huge integer
overflows the rules' arithmetic.
"""

import json

import pytest
from rest_framework.test import APIClient

from config import inputs
from lobby.models import Lobby, Player
from matchmaking.models import Profile, Ticket
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db

RULES = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
        },
        "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
        "maps": {"type": "intersection", "attributes": {"overlap": 1}},
    }
}
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
def api():
    player = PlayerFactory()
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {player.user.auth_token.key}")
    return client


@pytest.fixture(autouse=True)
def _queue():
    Profile.objects.create(name="duel", rules=RULES)


def _ticket(attributes: str) -> str:
    return '{"profile": "duel", "attributes": ' + attributes + "}"


LOBBIES, TICKETS, GUEST = "/api/v1/lobbies", "/api/v1/matchmaking/tickets", "/api/v1/players/guest"
BAD, INVALID = "malformed_request", "invalid"

# (path, raw JSON body, error code, the field the error names)
REFUSED = [
    ("/api/v1/matchmaking/parties/join", r'{"code": "\u0000"}', INVALID, "code"),
    (LOBBIES, r'{"name": "a", "metadata": {"k": "a\u0000b"}}', INVALID, "metadata.k"),
    (LOBBIES, r'{"name": "a", "metadata": {"k": "\ud800"}}', INVALID, "metadata.k"),
    (LOBBIES, r'{"name": "a", "metadata": {"k\u0000": 1}}', INVALID, "metadata"),
    (LOBBIES, r'{"name": "a\u0000b"}', INVALID, "name"),
    (LOBBIES, r'{"name": "a\udfffb"}', INVALID, "name"),
    (GUEST, r'{"display_name": "a\u0000"}', INVALID, "display_name"),
    (GUEST, r'{"display_name": "\ud800"}', INVALID, "display_name"),
    (GUEST, '{"display_name": 0}', INVALID, "display_name"),
    (LOBBIES, '{"name": "a", "metadata": {"k": ' + DEEP + "}}", BAD, None),
    (LOBBIES, DEEP, BAD, None),
    ("/api/v1/lobbies/join", DEEP, BAD, None),
    (TICKETS, _ticket(r'{"skill": 1, "maps": ["a\u0000b"]}'), INVALID, "attributes.maps.0"),
    (TICKETS, _ticket(r'{"skill": 1, "maps": ["\ud800"]}'), INVALID, "attributes.maps.0"),
    (TICKETS, _ticket(r'{"skill": 1, "maps": ["a"], "x\u0000": 1}'), INVALID, "attributes"),
    (TICKETS, _ticket('{"skill": 1' + "0" * 4000 + ', "maps": []}'), INVALID, "attributes.skill"),
    (TICKETS, _ticket('{"skill": 1e400, "maps": ["a"]}'), INVALID, "attributes.skill"),
    (TICKETS, _ticket('{"skill": NaN, "maps": ["a"]}'), INVALID, "attributes.skill"),
    (LOBBIES, b'{"name": "\xff"}', BAD, None),
]


@pytest.mark.parametrize(("path", "body", "code", "field"), REFUSED)
def test_bad_input_is_refused_with_a_clear_400(api, path, body, code, field):
    response = api.post(path, body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert list(error["fields"]) == [field]
        assert error["message"].startswith(f"{field}: ")
    assert not Lobby.objects.exists()
    assert not Ticket.objects.exists()
    assert Player.objects.count() == 1  # the caller


def test_well_formed_text_and_numbers_pass(api):
    body = {
        "name": "Café 😀",  # a surrogate pair in JSON is one character, not a lone surrogate
        "metadata": {"big": inputs.MAX_INT, "small": -inputs.MAX_INT, "ratio": 0.5},
    }
    raw = json.dumps(body)  # ensure_ascii: the emoji travels as "\ud83d\ude00"
    assert "\\ud83d\\ude00" in raw

    response = api.post("/api/v1/lobbies", raw, content_type="application/json")

    assert response.status_code == 201, response.content
    assert response.json()["name"] == "Café 😀"
    assert response.json()["metadata"]["big"] == inputs.MAX_INT


def test_nesting_up_to_the_limit_parses():
    nested = "[" * inputs.MAX_JSON_DEPTH + "]" * inputs.MAX_JSON_DEPTH
    assert inputs.loads(nested) == json.loads(nested)
    with pytest.raises(inputs.InputRejected):
        inputs.loads("[" + nested + "]")
    # Brackets inside strings are text, escaped quotes included.
    assert inputs.loads(json.dumps({"s": '\\"[' * 100})) == {"s": '\\"[' * 100}


def test_a_query_parameter_with_nul_is_refused(api):
    response = api.get("/api/v1/lobbies", {"q": "\x00"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_a_blank_or_non_string_name_is_refused_and_the_schema_says_so(api, client):
    for name in ("", "   ", 0, False, None, ["a"]):
        response = api.post("/api/v1/lobbies", {"name": name}, format="json")
        assert response.status_code == 400, name
    schema = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    assert schema["GuestIn"]["properties"]["display_name"]["minLength"] == 1
    assert schema["LobbyCreateIn"]["properties"]["name"]["minLength"] == 1
