"""OpenAPI additions for what drf-spectacular cannot see: the async events long-poll view, and
the session scheme of our session authentication (drf-spectacular knows DRF's class only)."""

from drf_spectacular.authentication import SessionScheme


class PlayerSessionScheme(SessionScheme):
    target_class = "lobby.authentication.PlayerSessionAuthentication"


EVENTS_PATH = "/api/v1/players/me/events"

_EVENT = {
    "type": "object",
    "required": ["seq", "type", "data"],
    "properties": {
        "seq": {"type": "integer", "description": "per-player, increasing"},
        "type": {
            "type": "string",
            "description": "lobby.updated, lobby.closed, lobby.kicked, relay.assignment, ...",
        },
        "data": {"type": "object", "additionalProperties": True},
    },
}


def add_events_endpoint(result, generator, request, public):
    """A drf-spectacular postprocessing hook: document GET /api/v1/players/me/events."""
    result.setdefault("components", {}).setdefault("schemas", {})["Event"] = _EVENT
    security = [{"tokenAuth": []}, {"cookieAuth": []}]
    result.setdefault("paths", {})[EVENTS_PATH] = {
        "get": {
            "operationId": "players_me_events",
            "summary": "The caller's event stream after `after`; `wait` long-polls",
            "tags": ["v1"],
            "security": security,
            "parameters": [
                {
                    "name": "after",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                    "description": "return events with a seq greater than this",
                },
                {
                    "name": "wait",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 30, "default": 0},
                    "description": "seconds to wait for an event when there is none yet",
                },
            ],
            "responses": {
                "200": {
                    "description": "events in order (at most 100), and the seq to ask after next",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["events", "last_seq"],
                                "properties": {
                                    "events": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Event"},
                                    },
                                    "last_seq": {"type": "integer"},
                                },
                            }
                        }
                    },
                },
                "400": {"description": "bad `after` or `wait`"},
                "401": {"description": "no or bad credentials"},
                "429": {"description": "throttled"},
            },
        }
    }
    return result
