"""Chat and moderation in the OpenAPI schema: sizes, throttles and error codes (issue 15)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    return client.get("/api/schema/", {"format": "json"}).json()


def _component(schema, operation, status="201", kind="responses"):
    if kind == "responses":
        content = operation["responses"][status]["content"]
    else:
        content = operation["requestBody"]["content"]
    ref = content["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_the_chat_endpoint_documents_its_size_throttles_and_errors(schema):
    operation = schema["paths"]["/api/v1/lobbies/{lobby_id}/messages"]["post"]

    text = _component(schema, operation, kind="request")["properties"]["text"]
    assert (text["minLength"], text["maxLength"]) == (1, 500)
    responses = operation["responses"]
    assert set(responses) >= {"201", "400", "403", "404", "409", "429"}
    assert "20/min" in responses["429"]["description"]
    assert "3/s" in responses["429"]["description"]
    assert "banned" in responses["403"]["description"]
    assert "not_a_member" in responses["403"]["description"]
    assert "control characters" in responses["400"]["description"]


def test_reports_document_the_reason_list_note_size_and_limits(schema):
    operation = schema["paths"]["/api/v1/lobbies/{lobby_id}/reports"]["post"]

    body = _component(schema, operation, kind="request")["properties"]
    reason = body["reason"]
    choices = (
        reason.get("enum")
        or schema["components"]["schemas"][reason["$ref"].rsplit("/", 1)[-1]]["enum"]
    )
    assert set(choices) == {
        "harassment",
        "hate",
        "spam",
        "cheating",
        "inappropriate_name",
        "other",
    }
    assert body["note"]["maxLength"] == 1000
    assert "10/hour" in operation["responses"]["429"]["description"]
    assert "already_reported" in operation["responses"]["409"]["description"]
