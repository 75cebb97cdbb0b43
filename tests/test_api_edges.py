"""The API speaks only JSON (issue 12): 406 for a client that accepts only HTML, the JSON 404
for any method on an unknown /api/ address, never Django's HTML CSRF page."""

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from config.errors import csrf_failure
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {PlayerFactory().user.auth_token.key}")
    return client


def test_accept_html_is_answered_406_in_json(api):
    response = api.get("/api/v1/lobbies", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_acceptable"


def test_the_browsable_api_is_not_served(api):
    assert api.get("/api/v1/lobbies", {"format": "api"}).status_code == 404
    assert api.get("/api/v1/lobbies", HTTP_ACCEPT="text/html, */*").status_code == 200


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/lobbies/not-a-uuid/start"])
def test_unknown_api_addresses_answer_the_json_404_whatever_the_method(method, path):
    browser = APIClient(enforce_csrf_checks=True)  # no token, no CSRF cookie: a stranger

    response = getattr(browser, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_a_csrf_refusal_under_api_is_json_and_elsewhere_the_page():
    factory = RequestFactory()

    api = csrf_failure(factory.post("/api/v1/players/me/events"), reason="CSRF cookie not set.")
    page = csrf_failure(factory.post("/accounts/login/"), reason="CSRF cookie not set.")

    assert api.status_code == 403 and api["Content-Type"] == "application/json"
    assert b'"code": "forbidden"' in api.content
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


def test_a_browser_write_without_csrf_is_a_json_403():
    browser = APIClient(enforce_csrf_checks=True)
    browser.post("/api/v1/players/guest", {"display_name": "Web"}, format="json")

    response = browser.post("/api/v1/lobbies", {"name": "L"}, format="json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
