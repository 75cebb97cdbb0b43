"""Edgegap's Distributed Relay API: the one door to it (shared docs: edgegap-relay.md).

- `errors`: what a caller may do next (`TransientError`, `AnswerLost`, `PermanentError`, ...).
- `contract`: the session as Edgegap reports it (`EdgegapSession`) and its lenient parsing.
- `client`: `EdgegapClient`, the only code that knows the base URL and the API token.
"""

from relays.edgegap.client import EdgegapClient, get_client
from relays.edgegap.contract import (
    U32_MAX,
    EdgegapSession,
    RelayEndpoint,
    SessionListing,
    SessionUser,
    match_users,
    normalize_ip,
)
from relays.edgegap.errors import (
    AnswerLost,
    EdgegapError,
    MalformedResponseError,
    PaginationError,
    PermanentError,
    SessionNotFound,
    TransientError,
    UserMatchError,
)

__all__ = [
    "U32_MAX",
    "AnswerLost",
    "EdgegapClient",
    "EdgegapError",
    "EdgegapSession",
    "MalformedResponseError",
    "PaginationError",
    "PermanentError",
    "RelayEndpoint",
    "SessionListing",
    "SessionNotFound",
    "SessionUser",
    "TransientError",
    "UserMatchError",
    "get_client",
    "match_users",
    "normalize_ip",
]
