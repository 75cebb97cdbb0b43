"""The one door to Edgegap's Distributed Relay REST API (shared docs: edgegap-relay.md).

Only this module knows the Edgegap base URL, the API token, the headers and the timeouts. It speaks
the same contract to Edgegap and to the local relay emulator: only the base URL and token differ,
and nothing here knows the emulator exists.

Every call goes through `requests` with a timeout and turns the outcome into typed results
(`RelaySession`, `SessionUser`, `RelayEndpoint`) or typed errors that tasks act on:

- `TransientError`: connection failures, timeouts, 429, 5xx, and a 2xx whose body we cannot read
  (`MalformedResponseError`). Retry with backoff, honouring `retry_after` when set.
- `PermanentError`: every other 4xx (and the odd 1xx/3xx). Never retry. `SessionNotFound` is the
  404 of a call about one session.

Keeping the token secret (edgegap-relay.md §1: "It must never reach ... a log line, an error
message"):

- The token lives in a `_TokenAuth` object whose repr is masked; it is set on each request by
  `requests`' auth hook, never in a shared session's default headers nor in a local `headers` dict.
- Error texts hold method, path, status and Edgegap's `message` only, and that message is scrubbed
  of the token in case a proxy echoes request headers back.
- `requests` exceptions keep the `PreparedRequest` (headers included) in `.request`, and some put
  header values in their text. We never chain them: the typed error is raised *after* the `except`
  block, so neither `__cause__` nor `__context__` points at them (`raise ... from None` is not
  enough: it only hides `__context__`, which still holds the original exception). Likewise no error
  keeps the `Response` (whose `.request` has the headers). What remains reachable is only by
  deliberate frame inspection (traceback frames hold the client and the response as locals); their
  reprs (`EdgegapClient(..., token='***')`, `<Response [200]>`) show no token, so error trackers
  that record locals by repr stay clean.
- Logs carry method, path, status and duration; never headers or bodies (bodies hold player IPs).
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)
T = TypeVar("T")

SESSIONS_PATH = "/v1/relays/sessions"
# The colon is part of the path (Google-style custom method), not a port: edgegap-relay.md §1.
AUTHORIZE_USER_PATH = "/v1/relays/sessions:authorize-user"
REVOKE_USER_PATH = "/v1/relays/sessions:revoke-user"

# "Unsigned 32-bit: values above 2^31 are normal (example 3500589645)". The wire protocol encodes
# tokens as u32, so anything outside this range cannot be used and is treated as malformed.
U32_MAX = 2**32 - 1

DEFAULT_MAX_PAGES = 1000
_MESSAGE_LIMIT = 300
_RETRY_AFTER_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")
_NUMERIC_TOKEN = re.compile(r"^\d+$")


# --- Errors ----------------------------------------------------------------------------------


class EdgegapError(Exception):
    """Base of every error raised by this module.

    Attributes (any may be None): `method`, `path`, `status` (HTTP status) and `message`
    (Edgegap's own `message` text, scrubbed of the API token). `str()` shows exactly these.
    """

    def __init__(
        self,
        description: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        parts = []
        if method or path:
            parts.append(f"Edgegap {method or '?'} {path or '?'}")
        if status is not None:
            parts.append(f"-> {status}")
        text = " ".join(parts)
        text = f"{text}: {description}" if text else description
        if message:
            text = f"{text}: {message}"
        super().__init__(text)

    def __reduce__(self):
        # Celery pickles exceptions (retry(exc=...)); keep the attributes across the round trip.
        return (self.__class__, (self.args[0],), self.__dict__)


class TransientError(EdgegapError):
    """Worth retrying later: connection error, timeout, 429, 5xx, unreadable 2xx body.

    `retry_after` is the server's `Retry-After` in seconds (from delay-seconds or an HTTP-date,
    never negative), or None when absent or unparseable. It is not capped: clamp it to your
    scheduler's limits.
    """

    def __init__(self, description: str, *, retry_after: float | None = None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(description, **kwargs)


class MalformedResponseError(TransientError):
    """A 2xx (or a 404 page of a list) whose body does not fit the contract.

    Classed as transient: a garbled success is most likely a proxy, load balancer or partial
    outage, and a later identical call usually reads fine. Callers bound their retries anyway.
    Note for `create_session`: the session may exist at Edgegap even though we could not read it;
    reconciliation (list + delete unowned sessions) cleans such leaks up.
    """


class PaginationError(MalformedResponseError):
    """`list_sessions` saw a repeated page or exceeded its page budget (a looping server)."""


class PermanentError(EdgegapError):
    """A 4xx other than 429 (or an unexpected 1xx/3xx): retrying the same call will not help.

    `status` is the HTTP status and `message` is Edgegap's `{"message": ...}` text (None when the
    body had none). `status` is None for a request that could not be sent at all (e.g. bad URL).
    """


class SessionNotFound(PermanentError):
    """404 on a call about one session: it does not exist (any more) at Edgegap.

    For `revoke_user` a 404 may also mean the user token is unknown (the API reference does not
    say which); both mean there is nothing left to revoke.
    """


class UserMatchError(EdgegapError, ValueError):
    """The session's users cannot be matched one-to-one to the requested seats."""


# --- Typed results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionUser:
    """One authorized user of a session; `authorization_token` is that *user's* u32 token."""

    ip_address: str
    authorization_token: int
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class RelayEndpoint:
    """Where players send UDP: the host to `server_port`, every other player to `client_port`."""

    ip: str
    host: str
    server_port: int
    client_port: int
    protocol: str = "UDP"


@dataclass(frozen=True, slots=True)
class RelaySession:
    """A relay session as Edgegap reports it.

    `authorization_token` is the *session* token (u32, None until assigned); each user's own token
    is in `users`. `relay` is None until the session is linked and its endpoint complete. `error`
    is None unless Edgegap reports a non-blank error. Poll on `ready`, give up on `failed`.
    """

    session_id: str
    status: str
    ready: bool
    linked: bool
    error: str | None
    authorization_token: int | None
    users: tuple[SessionUser, ...]
    relay: RelayEndpoint | None
    webhook_url: str | None

    @property
    def failed(self) -> bool:
        """True when Edgegap reports an error ("non-empty when the session failed")."""
        return self.error is not None

    def users_for(self, requested_ips: Sequence[str]) -> list[SessionUser]:
        """This session's users, one per requested seat, in request order (see `match_users`)."""
        return match_users(requested_ips, self.users)

    def user_tokens_for(self, requested_ips: Sequence[str]) -> list[int]:
        """Each requested seat's own user token, in request order (see `match_users`)."""
        return [user.authorization_token for user in self.users_for(requested_ips)]


def normalize_ip(ip: str) -> str:
    """Compare IPs by value, so `::ffff:1.2.3.4` or `2001:DB8::1` match their canonical forms."""
    text = ip.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def match_users(
    requested_ips: Sequence[str], session_users: Sequence[SessionUser]
) -> list[SessionUser]:
    """Map the session's users to the requested seats, returning one user per seat in seat order.

    "Whether `session_users` comes back in request order is unknown: match by `ip_address` where
    IPs are distinct, fall back to order when they collide (several players behind one NAT share
    an IP)" (edgegap-relay.md §1, lifecycle step 2). So seats are matched by IP, and seats sharing
    an IP take that IP's users in the order Edgegap returned them.

    Raises `UserMatchError` unless the users and seats pair up exactly (same count, same IPs):
    handing a player a token that is not its own is worse than failing the allocation.
    """
    if isinstance(requested_ips, str):
        raise TypeError("requested_ips must be a sequence of IPs, not a single string")
    if len(session_users) != len(requested_ips):
        raise UserMatchError(
            f"session has {len(session_users)} users for {len(requested_ips)} requested seats"
        )
    by_ip: dict[str, list[SessionUser]] = {}
    for user in session_users:
        by_ip.setdefault(normalize_ip(user.ip_address), []).append(user)
    matched = []
    for seat, ip in enumerate(requested_ips):
        queue = by_ip.get(normalize_ip(ip))
        if not queue:
            raise UserMatchError(f"no session user left for seat {seat} ({ip})")
        matched.append(queue.pop(0))
    return matched


# --- Parsing ---------------------------------------------------------------------------------


class _Malformed(Exception):
    """Internal: a body does not fit the contract; re-raised as MalformedResponseError."""


def _field(obj: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise _Malformed(f"{where}.{name} is missing")
    return obj[name]


def _as_str(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Malformed(f"{where} must be a string, got {type(value).__name__}")
    return value


def _as_bool(value: Any, where: str) -> bool:
    # Strict: a string "false" must not read as True and announce a relay that is not there.
    if not isinstance(value, bool):
        raise _Malformed(f"{where} must be a boolean, got {type(value).__name__}")
    return value


def _as_token(value: Any, where: str, *, optional: bool = False) -> int | None:
    """A u32 token as a Python int: "Generated clients typed the tokens as signed 32-bit and broke
    on real values" (edgegap-relay.md §3). Accepts ints, integral floats and digit strings."""
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise _Malformed(f"{where} must be an integer, got bool")
    if isinstance(value, int):
        token = value
    elif isinstance(value, float) and value.is_integer():
        token = int(value)
    elif isinstance(value, str) and _NUMERIC_TOKEN.match(value.strip()):
        token = int(value.strip())
    else:
        raise _Malformed(f"{where} must be an integer, got {type(value).__name__}")
    if not 0 <= token <= U32_MAX:
        raise _Malformed(f"{where} is outside the unsigned 32-bit range")
    return token


def _as_port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65535:
        raise _Malformed(f"{where} must be a port number")
    return value


def _as_coordinate(value: Any) -> float | None:
    # Informational only (nothing routes on it): a garbled coordinate must not fail a match.
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _as_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Malformed(f"{where} must be an object, got {type(value).__name__}")
    return value


def _parse_user(value: Any, where: str) -> SessionUser:
    obj = _as_object(value, where)
    return SessionUser(
        ip_address=_as_str(_field(obj, "ip_address", where), f"{where}.ip_address"),
        authorization_token=_as_token(
            _field(obj, "authorization_token", where), f"{where}.authorization_token"
        ),
        latitude=_as_coordinate(obj.get("latitude")),
        longitude=_as_coordinate(obj.get("longitude")),
    )


def _parse_relay(value: Any, ready: bool) -> RelayEndpoint | None:
    """The relay endpoint, or None while it is absent or incomplete.

    "`relay` object or null: null until linked". A relay that is still incomplete on a session
    that is not ready yet is read as "not there yet"; on a ready session it is malformed, since
    players would be told to connect to nothing.
    """
    if value is None:
        if ready:
            raise _Malformed("session is ready but relay is null")
        return None
    try:
        relay = _as_object(value, "relay")
        ports = _as_object(_field(relay, "ports", "relay"), "relay.ports")
        server = _as_object(_field(ports, "server", "relay.ports"), "relay.ports.server")
        client = _as_object(_field(ports, "client", "relay.ports"), "relay.ports.client")
        ip = _as_str(_field(relay, "ip", "relay"), "relay.ip")
        host = _as_str(relay.get("host"), "relay.host", optional=True)
        protocol = _as_str(server.get("protocol") or "UDP", "relay.ports.server.protocol")
        return RelayEndpoint(
            ip=ip,
            # The FQDN is what clients should prefer; the IP is a working stand-in if it is absent.
            host=host or ip,
            server_port=_as_port(_field(server, "port", "relay.ports.server"), "server port"),
            client_port=_as_port(_field(client, "port", "relay.ports.client"), "client port"),
            protocol=protocol,
        )
    except _Malformed:
        if ready:
            raise
        return None


def _parse_error(value: Any) -> str | None:
    # "error: string or null, non-empty when the session failed": blank means no error. Anything
    # else non-empty still means failure, so keep it (as JSON) rather than rejecting the body.
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if value in ({}, [], False):
        return None
    return json.dumps(value, default=str)[:_MESSAGE_LIMIT]


def _parse_session(value: Any) -> RelaySession:
    obj = _as_object(value, "session")
    session_id = _as_str(_field(obj, "session_id", "session"), "session.session_id")
    if not session_id:
        raise _Malformed("session.session_id is empty")
    ready = _as_bool(_field(obj, "ready", "session"), "session.ready")
    # Missing informational fields get neutral defaults; present ones must have the right type.
    status = _as_str(obj.get("status"), "session.status", optional=True) or ""
    linked = obj.get("linked", False)
    linked = False if linked is None else _as_bool(linked, "session.linked")
    raw_users = obj.get("session_users") or []
    if not isinstance(raw_users, list):
        raise _Malformed("session.session_users must be a list")
    return RelaySession(
        session_id=session_id,
        status=status,
        ready=ready,
        linked=linked,
        error=_parse_error(obj.get("error")),
        authorization_token=_as_token(
            obj.get("authorization_token"), "session.authorization_token", optional=True
        ),
        users=tuple(
            _parse_user(user, f"session.session_users[{index}]")
            for index, user in enumerate(raw_users)
        ),
        relay=_parse_relay(obj.get("relay"), ready),
        webhook_url=_as_str(obj.get("webhook_url"), "session.webhook_url", optional=True) or None,
    )


def _parse_authorized_user(value: Any) -> SessionUser:
    payload = _as_object(value, "answer")
    # Singular on purpose ("a **singular** `session_user` object holding the new user's token").
    # No fallback to a plural `session_users` list: with several players behind one NAT we could
    # not tell which entry is the new one, and handing a joiner someone else's token is the
    # pitfall edgegap-relay.md §3 warns about.
    return _parse_user(_field(payload, "session_user", "answer"), "answer.session_user")


def _parse_page(value: Any) -> tuple[list[RelaySession], int | None, int | None]:
    """One page of the list: its sessions, its page number, and the next page's (None: last)."""
    page = _as_object(value, "list")
    raw_sessions = _field(page, "sessions", "list")
    if not isinstance(raw_sessions, list):
        raise _Malformed("list.sessions must be a list")
    sessions = [_parse_session(raw) for raw in raw_sessions]
    pagination = page.get("pagination")
    if pagination is None:  # an unpaginated answer is the whole list
        return sessions, None, None
    pagination = _as_object(pagination, "list.pagination")
    number = pagination.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        number = None  # informational; only used to detect a server repeating a page
    if not _as_bool(pagination.get("has_next", False), "list.pagination.has_next"):
        return sessions, number, None
    next_number = pagination.get("next_page_number")
    if isinstance(next_number, bool) or not isinstance(next_number, int):
        raise _Malformed("list.pagination.has_next is true without a next_page_number")
    return sessions, number, next_number


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # requests' JSONDecodeError, also for an empty body
        pass
    raise _Malformed("body is not JSON")


def _parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delay-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if _RETRY_AFTER_SECONDS.match(value):  # digits only: float() would also take "nan", "inf"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may lack a zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- The client ------------------------------------------------------------------------------


class _TokenAuth(requests.auth.AuthBase):
    """Sets `Authorization: token <key>` per request; its repr never shows the key."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        # The literal word `token`, a space, then the key (not `Bearer`, not `Token`).
        request.headers["Authorization"] = f"token {self._token}"
        return request

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def __repr__(self) -> str:
        return "<token ***>"


_SENT_BUT_BROKEN = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class EdgegapClient:
    """Client for Edgegap's relay session API (or the emulator, which speaks the same contract).

    `base_url` is e.g. `https://api.edgegap.com`; `token` the API token; `timeout` the seconds
    passed to every `requests` call. A `session` may be shared (its default headers are left
    alone); otherwise the client owns one and `close()` (or `with`) releases it.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if not isinstance(token, str) or not token:
            raise ValueError("the Edgegap API token must be a non-empty string")
        # requests rejects such a header with an error text that quotes the value: refuse it here,
        # without echoing it.
        if any(ch.isspace() or not ch.isprintable() for ch in token):
            raise ValueError("the Edgegap API token contains whitespace or control characters")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._auth = _TokenAuth(token)
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    @classmethod
    def from_settings(cls, session: requests.Session | None = None) -> EdgegapClient:
        """A client from `EDGEGAP_API_URL`, `EDGEGAP_API_TOKEN` and `EDGEGAP_TIMEOUT`.

        Raises `ImproperlyConfigured` when `EDGEGAP_API_URL` is unset: the launcher points it at
        the local emulator, production at Edgegap.
        """
        from django.conf import settings

        base_url = getattr(settings, "EDGEGAP_API_URL", None)
        if not base_url:
            raise ImproperlyConfigured(
                "EDGEGAP_API_URL is not set: point it at Edgegap (https://api.edgegap.com) or at "
                "the local relay emulator (runstack sets it)"
            )
        token = getattr(settings, "EDGEGAP_API_TOKEN", None)
        if not token:
            raise ImproperlyConfigured("EDGEGAP_API_TOKEN is not set")
        timeout = getattr(settings, "EDGEGAP_TIMEOUT", None) or 10.0
        try:
            return cls(base_url, token, timeout, session=session)
        except ValueError as exc:
            raise ImproperlyConfigured(f"Edgegap settings are not valid: {exc}") from None

    def __repr__(self) -> str:
        return f"EdgegapClient(base_url={self.base_url!r}, token='***', timeout={self.timeout!r})"

    __str__ = __repr__

    def close(self) -> None:
        """Release the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> EdgegapClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Endpoints ---------------------------------------------------------------------------

    def create_session(
        self,
        ips: Sequence[str],
        *,
        webhook_url: str | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
    ) -> RelaySession:
        """`POST /v1/relays/sessions` for these players' public IPs, **host first**.

        The answer is normally not ready yet (`ready=False`, `relay=None`): poll `get_session`.
        Its `users` may come back in any order; use `RelaySession.users_for(ips)` to pair them
        with seats. Not idempotent: after a `TransientError` the session may still exist at
        Edgegap (reconciliation deletes it). `filters` is passed as given, e.g.
        `[{"field": "location", "values": ["EU"], "filter_type": "any"}]`.
        """
        if isinstance(ips, str):
            raise TypeError("ips must be a sequence of IPs, not a single string")
        ips = list(ips)
        if not ips:
            raise ValueError("a relay session needs at least one user")
        for ip in ips:
            if not isinstance(ip, str):
                raise TypeError("every IP must be a string")
            ipaddress.ip_address(ip)  # ValueError for a non-IP: a caller bug, not Edgegap's
        body: dict[str, Any] = {"users": [{"ip": ip} for ip in ips]}
        if webhook_url is not None:
            body["webhook_url"] = webhook_url
        if filters is not None:
            body["filters"] = [dict(item) for item in filters]
        return self._session_call("POST", SESSIONS_PATH, body)

    def get_session(self, session_id: str) -> RelaySession:
        """`GET /v1/relays/sessions/{id}`. Raises `SessionNotFound` on 404 (e.g. deleted)."""
        return self._session_call("GET", self._session_path(session_id), None)

    def list_sessions(self, *, max_pages: int = DEFAULT_MAX_PAGES) -> list[RelaySession]:
        """Every session of the account, `GET /v1/relays/sessions` page by page.

        Whether `?page=&limit=` is honoured is unknown (edgegap-relay.md §1), so this follows
        `pagination.has_next` / `next_page_number` until `has_next` is false, and raises
        `PaginationError` when a page number repeats (a server ignoring `?page=` would loop
        forever) or after `max_pages` pages. A body without `pagination` is one page. Sessions
        seen twice (a page shifting under deletes) are returned once; one skipped that way is
        caught by the next reconciliation.
        """
        sessions: dict[str, RelaySession] = {}
        requested: set[int] = set()
        reported: set[int] = set()
        path = SESSIONS_PATH
        for _ in range(max_pages):
            response = self._send("GET", path, None)
            page_sessions, number, next_number = self._read(response, "GET", path, _parse_page)
            for session in page_sessions:
                sessions.setdefault(session.session_id, session)
            if next_number is None:
                return list(sessions.values())
            if number is not None:
                if number in reported:
                    raise PaginationError(
                        f"page {number} was served twice", method="GET", path=path
                    )
                reported.add(number)
            if next_number in requested or next_number == number:
                raise PaginationError(
                    f"next page {next_number} was already read", method="GET", path=path
                )
            requested.add(next_number)
            path = f"{SESSIONS_PATH}?page={next_number}"
        raise PaginationError(f"still more pages after {max_pages}", method="GET", path=path)

    def delete_session(self, session_id: str) -> bool:
        """`DELETE /v1/relays/sessions/{id}`. True when deleted (204), False when already gone.

        A 404 is success for cleanup ("404 when already gone (treat as success when cleaning
        up)"), so this never raises on 404; other failures raise as usual.
        """
        response = self._send("DELETE", self._session_path(session_id), None, allow_404=True)
        return response.status_code != 404

    def authorize_user(self, session_id: str, ip: str) -> SessionUser:
        """`POST /v1/relays/sessions:authorize-user` for a late joiner; returns the new user.

        The answer carries a **singular** `session_user` holding the new user's own token. A 409
        is possible (cause unknown) and surfaces as `PermanentError` with `status == 409`.
        """
        if not isinstance(ip, str):
            raise TypeError("ip must be a string")
        ipaddress.ip_address(ip)
        body = {"session_id": self._check_id(session_id), "user_ip": ip}
        response = self._send("POST", AUTHORIZE_USER_PATH, body, not_found=SessionNotFound)
        return self._read(response, "POST", AUTHORIZE_USER_PATH, _parse_authorized_user)

    def revoke_user(self, session_id: str, user_token: int) -> None:
        """`POST /v1/relays/sessions:revoke-user` with that user's own token.

        Edgegap answers "200 + session, **or** 204 with no body": any 2xx is success and the body,
        if any, is ignored. 404 raises `SessionNotFound`.
        """
        if isinstance(user_token, bool) or not isinstance(user_token, int):
            raise TypeError("user_token must be an int")
        if not 0 <= user_token <= U32_MAX:
            raise ValueError("user_token is outside the unsigned 32-bit range")
        body = {"session_id": self._check_id(session_id), "authorization_token": user_token}
        self._send("POST", REVOKE_USER_PATH, body, not_found=SessionNotFound)

    # --- Plumbing ----------------------------------------------------------------------------

    @staticmethod
    def _check_id(session_id: str) -> str:
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        return session_id

    def _session_path(self, session_id: str) -> str:
        # Quoted so that an odd id cannot walk to another path ("../", "?", "/").
        return f"{SESSIONS_PATH}/{quote(self._check_id(session_id), safe='')}"

    def _session_call(self, method: str, path: str, body: Any) -> RelaySession:
        not_found = SessionNotFound if method == "GET" else PermanentError
        response = self._send(method, path, body, not_found=not_found)
        return self._read(response, method, path, _parse_session)

    @staticmethod
    def _read(response: requests.Response, method: str, path: str, parse: Callable[[Any], T]) -> T:
        """Parse a 2xx JSON body, turning any contract mismatch into MalformedResponseError."""
        try:
            return parse(_json_body(response))
        except _Malformed as exc:
            problem = str(exc)
        # Raised outside the except block: no exception chain to carry around (see module doc).
        raise MalformedResponseError(problem, method=method, path=path, status=response.status_code)

    def _edgegap_message(self, response: requests.Response) -> str | None:
        """Edgegap's `{"message": ...}`, scrubbed of the token and truncated; None if absent."""
        try:
            payload = response.json()
        except ValueError:
            return None
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, str) or not message.strip():
            return None
        return self._auth.redact(" ".join(message.split()))[:_MESSAGE_LIMIT]

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        allow_404: bool = False,
        not_found: type[PermanentError] = PermanentError,
    ) -> requests.Response:
        """One HTTP call: a 2xx response (or a 404 when `allow_404`), else a typed error."""
        started = time.monotonic()
        failure: tuple[type[EdgegapError], str] | None = None
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                json=body,
                headers={"Accept": "application/json"},
                auth=self._auth,
                timeout=self.timeout,
                # A redirect means a wrong base URL; following it could also replay a POST.
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            failure = (TransientError, f"timed out ({type(exc).__name__})")
        except (requests.ConnectionError, *_SENT_BUT_BROKEN) as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            detail = type(exc).__name__ + (f"/{type(reason).__name__}" if reason else "")
            failure = (TransientError, f"connection failed ({detail})")
        except requests.RequestException as exc:
            # Invalid URL, header and the like: configuration, not weather. Only the class name
            # is kept: InvalidHeader's text quotes the header value.
            failure = (PermanentError, f"request not sent ({type(exc).__name__})")
        elapsed_ms = (time.monotonic() - started) * 1000
        if failure is not None:
            # Raised here, outside the except blocks, so the requests exception (which holds the
            # PreparedRequest and its Authorization header) is neither __cause__ nor __context__.
            error_class, description = failure
            logger.warning(
                "edgegap %s %s failed after %.0f ms: %s", method, path, elapsed_ms, description
            )
            raise error_class(description, method=method, path=path)

        status = response.status_code
        level = logging.DEBUG if method == "GET" else logging.INFO
        if status >= 400 and not (status == 404 and allow_404):
            level = logging.WARNING
        logger.log(level, "edgegap %s %s -> %s in %.0f ms", method, path, status, elapsed_ms)

        if 200 <= status < 300 or (status == 404 and allow_404):
            return response
        message = self._edgegap_message(response)
        if status == 429 or status >= 500:
            retry_after = None
            # Retry-After "may or may not be present" on 429; RFC 9110 also allows it on 503.
            if status in (429, 503):
                retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            description = "rate limited" if status == 429 else "server error"
            raise TransientError(
                description,
                retry_after=retry_after,
                method=method,
                path=path,
                status=status,
                message=message,
            )
        error_class = not_found if status == 404 else PermanentError
        description = "unexpected status" if status < 400 else "rejected"
        raise error_class(description, method=method, path=path, status=status, message=message)


def get_client(session: requests.Session | None = None) -> EdgegapClient:
    """The client configured by Django settings (see `EdgegapClient.from_settings`)."""
    return EdgegapClient.from_settings(session=session)
