"""Entity tags for what game clients poll: an `ETag` on the answer, and `If-None-Match` answered
`304 Not Modified` without building the body (docs/api.md "Conditional polling").

A tag is derived from a counter that every change to the answer moves, read before the answer
itself (so an answer never carries a tag newer than what it shows):

- the assignment: the player's `event_seq`. Every change a player's assignment can see (its lobby
  starting, the relay ready or failed, its seat authorized or revoked, the lobby closing, it
  leaving or being kicked) writes an event to that player in the change's own transaction.
- the lobby detail: the lobby's `version` (every lobby change bumps it, membership included),
  and the caller (a member and an outsider see different `join_code`s).
- the browse page: the page's own lobbies and versions, the total count and the page's URL
  (`next` and `previous` are absolute URLs).

Both doors (the DRF views in lobby.apis and the lean path in lobby.fastpath) use these functions,
so they give the same tags; tests/lobby/test_fastpath.py holds them to it.
"""

from __future__ import annotations

import hashlib

from django.http import HttpResponseNotModified
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

# Part of every tag: bump it when an answer's shape changes, so that a client holding a tag from
# before an upgrade is not told that its old-shaped copy is current.
SHAPE = "1"


def _tag(*parts) -> str:
    text = "\x1f".join(str(part) for part in (SHAPE, *parts))
    digest = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def assignment_etag(*, player_id: int, event_seq: int) -> str:
    return _tag("assignment", player_id, event_seq)


def lobby_etag(*, lobby_id, version: int, player_id: int) -> str:
    return _tag("lobby", str(lobby_id), version, player_id)


def lobby_list_etag(*, url: str, count: int, page) -> str:
    """`page`: the (id, version) of each lobby on the page, in order."""
    return _tag("lobbies", url, count, *(f"{pk}:{version}" for pk, version in page))


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names this tag (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    tags = parse_etags(if_none_match)
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def not_modified_response(etag: str) -> HttpResponseNotModified:
    response = HttpResponseNotModified()
    response["ETag"] = etag
    return response


# The OpenAPI schema's words for the conditional GETs (lobby.apis).
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="the `ETag` of the answer you hold: `304` while it is still current",
)
NOT_MODIFIED = {
    304: OpenApiResponse(description="Not Modified: the answer you hold (its `ETag`) is current")
}
