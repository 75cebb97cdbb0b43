"""Errors in one shape, `{"error": {"code", "message"}}`, with fitting statuses; body and rate
limits (design.md §4)."""

import json

import pytest
from rest_framework.test import APIClient

from lobby.models import Lobby
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db

LOBBIES = "/api/v1/lobbies"


def error(response):
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return response.status_code, body["error"]["code"]


# --- Authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/players/me"),
        ("get", "/api/v1/players/me/assignment"),
        ("get", LOBBIES),
        ("post", LOBBIES),
        ("post", "/api/v1/lobbies/join"),
        ("get", "/api/v1/lobbies/00000000-0000-4000-8000-000000000000"),
        ("post", "/api/v1/lobbies/00000000-0000-4000-8000-000000000000/start"),
    ],
)
def test_anonymous_callers_are_refused_with_401(anonymous, method, path):
    response = getattr(anonymous, method)(path)

    assert error(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_refused_with_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = anonymous.get("/api/v1/players/me")

    assert error(response) == (401, "authentication_failed")


def test_the_token_of_a_deactivated_user_is_refused(api, player):
    player.user.is_active = False
    player.user.save()

    response = api.get("/api/v1/players/me")

    assert error(response) == (401, "authentication_failed")


def test_browser_session_writes_need_the_csrf_token():
    browser = APIClient(enforce_csrf_checks=True)
    assert (
        browser.post("/api/v1/players/guest", {"display_name": "Web"}, format="json").status_code
        == 201
    )

    refused = browser.post(LOBBIES, {"name": "L"}, format="json")
    allowed = browser.post(
        LOBBIES,
        {"name": "L"},
        format="json",
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )

    assert error(refused) == (403, "forbidden")
    assert "CSRF" in refused.json()["error"]["message"]
    assert allowed.status_code == 201


# --- Requests the API cannot read --------------------------------------------------------------


def test_malformed_json_is_refused_with_400(api):
    response = api.post(LOBBIES, '{"name": "L",', content_type="application/json")

    assert error(response) == (400, "malformed_request")
    assert not Lobby.objects.exists()


def test_a_form_body_is_refused_with_415(api):
    response = api.post(LOBBIES, {"name": "L"})  # multipart, not JSON

    assert error(response) == (415, "unsupported_media_type")


def test_a_wrong_method_is_refused_with_405(api):
    response = api.delete(LOBBIES)

    assert error(response) == (405, "method_not_allowed")


def test_validation_errors_name_the_field_and_list_every_field(api):
    response = api.post(LOBBIES, {"name": "", "max_players": 1}, format="json")

    assert error(response) == (400, "invalid")
    assert response.json()["error"]["message"] == "name: This field may not be blank."
    assert response.json()["error"]["fields"] == {
        "name": ["This field may not be blank."],
        "max_players": ["Ensure this value is greater than or equal to 2."],
    }


def test_a_body_over_the_upload_limit_is_refused_with_413(api, settings):
    body = json.dumps({"name": "L", "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})

    response = api.post(LOBBIES, body, content_type="application/json")

    assert error(response) == (413, "too_large")
    assert not Lobby.objects.exists()


def test_a_body_under_the_upload_limit_is_read(api, settings):
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 100)
    body = json.dumps({"name": "L", "padding": padding})  # an unknown field: ignored

    response = api.post(LOBBIES, body, content_type="application/json")

    assert response.status_code == 201


# --- Addresses that do not exist ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/v2/lobbies",
        "/api/v1/lobbies/not-a-uuid",
        "/api/v1/lobbies/",  # no trailing slashes in v1
    ],
)
def test_unknown_api_addresses_answer_404_in_json(api, path):
    response = api.get(path)

    assert response["Content-Type"] == "application/json"
    assert error(response) == (404, "not_found")


def test_unknown_page_addresses_answer_an_html_404(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


# --- Rate limits -------------------------------------------------------------------------------


def _throttled(response):
    assert error(response) == (429, "throttled")
    retry_after = response.json()["error"]["retry_after"]
    assert 0 < retry_after <= 60
    assert int(response["Retry-After"]) == pytest.approx(retry_after, abs=1)


def test_a_player_over_its_rate_is_throttled(api, throttle_rates):
    throttle_rates(player="3/min")
    for _ in range(3):
        assert api.get(LOBBIES).status_code == 200

    _throttled(api.get(LOBBIES))


def test_players_are_throttled_separately(client_for, throttle_rates):
    throttle_rates(player="1/min")
    first, second = client_for(PlayerFactory()), client_for(PlayerFactory())
    assert first.get(LOBBIES).status_code == 200

    assert second.get(LOBBIES).status_code == 200
    _throttled(first.get(LOBBIES))


def test_one_address_over_its_rate_is_throttled_whoever_calls(client_for, throttle_rates):
    throttle_rates(ip="2/min")
    first, second = client_for(PlayerFactory()), client_for(PlayerFactory())
    assert first.get(LOBBIES, REMOTE_ADDR="198.51.100.1").status_code == 200
    assert second.get(LOBBIES, REMOTE_ADDR="198.51.100.1").status_code == 200

    _throttled(first.get(LOBBIES, REMOTE_ADDR="198.51.100.1"))
    assert second.get(LOBBIES, REMOTE_ADDR="198.51.100.2").status_code == 200


def test_guest_creation_is_throttled_per_address(anonymous, throttle_rates):
    throttle_rates(guest="2/hour")
    for _ in range(2):
        assert (
            anonymous.post(
                "/api/v1/players/guest", {"display_name": "G"}, format="json"
            ).status_code
            == 201
        )

    response = APIClient().post("/api/v1/players/guest", {"display_name": "G"}, format="json")

    assert error(response) == (429, "throttled")
    assert response.json()["error"]["retry_after"] > 60  # counted per hour


def test_join_code_guessing_is_throttled(api, throttle_rates):
    throttle_rates(join_code="2/min")
    for _ in range(2):
        response = api.post("/api/v1/lobbies/join", {"code": "ZZZZZZZZ"}, format="json")
        assert error(response) == (404, "wrong_code")

    _throttled(api.post("/api/v1/lobbies/join", {"code": "ZZZZZZZZ"}, format="json"))
    assert api.get(LOBBIES).status_code == 200  # only the join-by-code rate is spent


def test_event_polling_is_throttled(api, throttle_rates):
    throttle_rates(player="2/min")
    for _ in range(2):
        assert api.get("/api/v1/players/me/events").status_code == 200

    response = api.get("/api/v1/players/me/events")

    _throttled(response)
    assert response.json()["error"]["message"] == "Too many requests; slow down."
