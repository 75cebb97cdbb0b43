"""The OpenAPI schema and the interactive docs (design.md §4)."""

import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

V1_OPERATIONS = {
    ("/api/v1/players/guest", "post"),
    ("/api/v1/players/me", "get"),
    ("/api/v1/players/me/assignment", "get"),
    ("/api/v1/players/me/events", "get"),
    ("/api/v1/lobbies", "get"),
    ("/api/v1/lobbies", "post"),
    ("/api/v1/lobbies/join", "post"),
    ("/api/v1/lobbies/{lobby_id}", "get"),
    *(
        (f"/api/v1/lobbies/{{lobby_id}}/{action}", "post")
        for action in ("join", "leave", "ready", "kick", "transfer-host", "start", "end")
    ),
    # Chat and moderation (moderation/apis.py)
    ("/api/v1/lobbies/{lobby_id}/messages", "get"),
    ("/api/v1/lobbies/{lobby_id}/messages", "post"),
    ("/api/v1/lobbies/{lobby_id}/reports", "post"),
    ("/api/v1/players/me/mutes", "get"),
    ("/api/v1/players/me/mutes", "post"),
    ("/api/v1/players/me/mutes/{player_id}", "delete"),
    # Results and ratings (ratings/apis.py)
    ("/api/v1/lobbies/{lobby_id}/result", "get"),
    ("/api/v1/lobbies/{lobby_id}/result", "post"),
    ("/api/v1/leaderboards/{name}", "get"),
}


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_served_to_anyone(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_schema_documents_every_v1_operation(schema):
    documented = {
        (path, method)
        for path, operations in schema["paths"].items()
        if path.startswith(("/api/v1/players", "/api/v1/lobbies", "/api/v1/leaderboards"))
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }

    assert documented == V1_OPERATIONS


def test_schema_documents_token_authentication(schema):
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    assert schema["paths"]["/api/v1/players/me"]["get"]["security"] == [
        {"tokenAuth": []},
        {"cookieAuth": []},
    ]
    # Guest creation needs no credentials: no security of its own, none document-wide.
    assert "security" not in schema
    assert schema["paths"]["/api/v1/players/guest"]["post"].get("security", [{}]) == [{}]


def test_schema_documents_the_lobby_list_as_a_page_with_its_filters(schema):
    operation = schema["paths"]["/api/v1/lobbies"]["get"]

    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {
        "mode",
        "region",
        "q",
        "page",
        "page_size",
    }
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert {"count", "next", "previous", "results"} <= set(page["properties"])


def test_schema_validates_without_warnings(tmp_path, capsys):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    captured = capsys.readouterr()
    assert "Warning" not in captured.err and "Error" not in captured.err
    assert target.read_text().startswith("openapi: 3.")


def test_docs_page_loads_its_assets_from_this_host(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert all(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets)
    assert not re.search(r"https?://", html)  # no CDN
    assert '"/api/schema/"' in html
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
