"""The relay session contract (shared docs: edgegap-relay.md §1): typed results and their parsing.

Edgegap's OpenAPI marks only `session_id`, `ready`, `linked` and `status` as required; every other
field of a session and of a session user is optional. Parsing is therefore lenient about what may
be missing and exact about what is present:

- a user without a token (Edgegap lists users by IP before READY) is not listed yet;
- a session is `ready` only when players could really use it: Edgegap says ready *and* the session
  token and the relay endpoint are there (a "ready" session without a token is not ready yet);
- a list entry that cannot be read keeps its id (`garbled`), so that the caller knows it exists
  without trusting anything else about it;
- a token outside u32, or the string `"false"` for a boolean, is malformed: guessing there could
  hand players a relay that is not there.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from relays.edgegap.errors import UserMatchError

# "Unsigned 32-bit: values above 2^31 are normal (example 3500589645)". The wire protocol encodes
# tokens as u32, so anything outside this range cannot be used and is treated as malformed.
U32_MAX = 2**32 - 1

MESSAGE_LIMIT = 300
_RETRY_AFTER_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")
_NUMERIC_TOKEN = re.compile(r"^\d+$")


# --- Typed results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionUser:
    """One authorized user of a session; `authorization_token` is that *user's* u32 token.

    `ip_address` is None when Edgegap left it out (the contract makes it optional).
    """

    ip_address: str | None
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
class EdgegapSession:
    """A relay session as Edgegap reports it (the database's `relays.models.RelaySession` is ours).

    `ready` means players can connect now: Edgegap reports it ready and both the *session* token
    (`authorization_token`) and the `relay` endpoint are present. `users` holds the users that
    have their own token already. `error` is None unless Edgegap reports a non-blank error.
    `garbled` marks a list entry whose id was readable but nothing else: only its existence is
    known. Poll on `ready`, give up on `failed`.
    """

    session_id: str
    status: str = ""
    ready: bool = False
    linked: bool = False
    error: str | None = None
    authorization_token: int | None = None
    users: tuple[SessionUser, ...] = ()
    relay: RelayEndpoint | None = None
    webhook_url: str | None = None
    garbled: bool = False
    # Every listed user's IP, token or not: before READY, Edgegap may list users by IP only.
    listed_ips: tuple[str, ...] = ()

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

    def users_at(self, ip: str) -> list[SessionUser]:
        """The users authorized for this IP, in Edgegap's order."""
        wanted = normalize_ip(ip)
        return [u for u in self.users if u.ip_address and normalize_ip(u.ip_address) == wanted]


@dataclass(frozen=True, slots=True)
class SessionListing:
    """What a walk through the paginated list saw.

    `complete` is True only when the walk followed `has_next` to its end and read every entry.
    Even then, absence proves nothing: the list is offset-paginated, so a delete elsewhere shifts
    a session onto a page already read. Only `GET /sessions/{id}` answering 404 proves "gone".
    """

    sessions: tuple[EdgegapSession, ...]
    complete: bool


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
    an IP)" (edgegap-relay.md §1, lifecycle step 2). So seats are matched by IP, seats sharing an
    IP take that IP's users in the order Edgegap returned them, and users listed without an IP
    (the field is optional) fill the seats left over, in order.

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
    without_ip: list[SessionUser] = []
    for user in session_users:
        if user.ip_address:
            by_ip.setdefault(normalize_ip(user.ip_address), []).append(user)
        else:
            without_ip.append(user)
    matched: list[SessionUser | None] = []
    for ip in requested_ips:
        queue = by_ip.get(normalize_ip(ip))
        matched.append(queue.pop(0) if queue else None)
    for seat, user in enumerate(matched):
        if user is None:
            if not without_ip:
                ip = requested_ips[seat]
                raise UserMatchError(f"no session user left for seat {seat} ({ip})")
            matched[seat] = without_ip.pop(0)
    return matched  # type: ignore[return-value]


# --- Parsing ---------------------------------------------------------------------------------


class Malformed(Exception):
    """A body does not fit the contract; the client re-raises it as MalformedResponseError."""


def _field(obj: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in obj:
        raise Malformed(f"{where}.{name} is missing")
    return obj[name]


def _as_str(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{where} must be a string, got {type(value).__name__}")
    return value


def _as_bool(value: Any, where: str) -> bool:
    # Strict: a string "false" must not read as True and announce a relay that is not there.
    if not isinstance(value, bool):
        raise Malformed(f"{where} must be a boolean, got {type(value).__name__}")
    return value


def _as_token(value: Any, where: str, *, optional: bool = False) -> int | None:
    """A u32 token as a Python int: "Generated clients typed the tokens as signed 32-bit and broke
    on real values" (edgegap-relay.md §3). Accepts ints, integral floats and digit strings."""
    if value is None and optional:
        return None
    if isinstance(value, bool):
        raise Malformed(f"{where} must be an integer, got bool")
    if isinstance(value, int):
        token = value
    elif isinstance(value, float) and value.is_integer():
        token = int(value)
    elif isinstance(value, str) and _NUMERIC_TOKEN.match(value.strip()):
        token = int(value.strip())
    else:
        raise Malformed(f"{where} must be an integer, got {type(value).__name__}")
    if not 0 <= token <= U32_MAX:
        raise Malformed(f"{where} is outside the unsigned 32-bit range")
    return token


def _as_port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65535:
        raise Malformed(f"{where} must be a port number")
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
        raise Malformed(f"{where} must be an object, got {type(value).__name__}")
    return value


def _parse_user(value: Any, where: str) -> SessionUser | None:
    """A user with its own token, or None for one that has no token yet (before READY)."""
    obj = _as_object(value, where)
    token = _as_token(obj.get("authorization_token"), f"{where}.authorization_token", optional=True)
    if token is None:
        return None
    return SessionUser(
        ip_address=_as_str(obj.get("ip_address"), f"{where}.ip_address", optional=True) or None,
        authorization_token=token,
        latitude=_as_coordinate(obj.get("latitude")),
        longitude=_as_coordinate(obj.get("longitude")),
    )


def _parse_relay(value: Any) -> RelayEndpoint | None:
    """The relay endpoint, or None while it is absent or incomplete ("null until linked")."""
    if not isinstance(value, Mapping):
        return None
    try:
        ports = _as_object(_field(value, "ports", "relay"), "relay.ports")
        server = _as_object(_field(ports, "server", "relay.ports"), "relay.ports.server")
        client = _as_object(_field(ports, "client", "relay.ports"), "relay.ports.client")
        ip = _as_str(_field(value, "ip", "relay"), "relay.ip")
        # Players dial this address as is and it is stored in a GenericIPAddressField (an `inet`
        # on PostgreSQL, which refuses a hostname): a blank or non-IP value is no usable relay.
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise Malformed("relay.ip is not an IP address") from None
        host = _as_str(value.get("host"), "relay.host", optional=True)
        protocol = _as_str(server.get("protocol") or "UDP", "relay.ports.server.protocol")
        return RelayEndpoint(
            ip=ip,
            # The FQDN is what clients should prefer; the IP is a working stand-in if it is absent.
            host=host or ip,
            server_port=_as_port(_field(server, "port", "relay.ports.server"), "server port"),
            client_port=_as_port(_field(client, "port", "relay.ports.client"), "client port"),
            protocol=protocol,
        )
    except Malformed:
        return None  # not usable yet: the session is not ready until it is


def _parse_error(value: Any) -> str | None:
    # "error: string or null, non-empty when the session failed": blank means no error. Anything
    # else non-empty still means failure, so keep it (as JSON) rather than rejecting the body.
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if value in ({}, [], False):
        return None
    return json.dumps(value, default=str)[:MESSAGE_LIMIT]


def _parse_session_id(obj: Mapping[str, Any]) -> str:
    session_id = _as_str(_field(obj, "session_id", "session"), "session.session_id")
    if not session_id:
        raise Malformed("session.session_id is empty")
    return session_id


def parse_session(value: Any) -> EdgegapSession:
    obj = _as_object(value, "session")
    session_id = _parse_session_id(obj)
    reported_ready = _as_bool(_field(obj, "ready", "session"), "session.ready")
    # Missing informational fields get neutral defaults; present ones must have the right type.
    status = _as_str(obj.get("status"), "session.status", optional=True) or ""
    linked = obj.get("linked", False)
    linked = False if linked is None else _as_bool(linked, "session.linked")
    raw_users = obj.get("session_users") or []
    if not isinstance(raw_users, list):
        raise Malformed("session.session_users must be a list")
    users = [
        _parse_user(user, f"session.session_users[{index}]") for index, user in enumerate(raw_users)
    ]
    listed_ips = tuple(
        ip
        for user in raw_users
        if isinstance(user, Mapping) and isinstance(ip := user.get("ip_address"), str) and ip
    )
    token = _as_token(obj.get("authorization_token"), "session.authorization_token", optional=True)
    relay = _parse_relay(obj.get("relay"))
    return EdgegapSession(
        session_id=session_id,
        status=status,
        ready=reported_ready and token is not None and relay is not None,
        linked=linked,
        error=_parse_error(obj.get("error")),
        authorization_token=token,
        users=tuple(user for user in users if user is not None),
        relay=relay,
        webhook_url=_as_str(obj.get("webhook_url"), "session.webhook_url", optional=True) or None,
        listed_ips=listed_ips,
    )


def parse_authorized_user(value: Any) -> SessionUser:
    payload = _as_object(value, "answer")
    # Singular on purpose ("a **singular** `session_user` object holding the new user's token").
    # No fallback to a plural `session_users` list: with several players behind one NAT we could
    # not tell which entry is the new one, and handing a joiner someone else's token is the
    # pitfall edgegap-relay.md §3 warns about.
    user = _parse_user(_field(payload, "session_user", "answer"), "answer.session_user")
    if user is None:
        raise Malformed("answer.session_user has no authorization_token")
    return user


def _parse_list_entry(value: Any) -> EdgegapSession | None:
    """A list entry; a garbled one keeps its id (None when even that is unreadable)."""
    try:
        return parse_session(value)
    except Malformed:
        pass
    try:
        session_id = _parse_session_id(_as_object(value, "session"))
    except Malformed:
        return None
    return EdgegapSession(session_id=session_id, garbled=True)


def parse_page(value: Any) -> tuple[list[EdgegapSession], bool, int | None, int | None]:
    """One page of the list: its sessions, whether every entry was readable, its page number,
    and the next page's (None: last)."""
    page = _as_object(value, "list")
    raw_sessions = _field(page, "sessions", "list")
    if not isinstance(raw_sessions, list):
        raise Malformed("list.sessions must be a list")
    entries = [_parse_list_entry(raw) for raw in raw_sessions]
    sessions = [entry for entry in entries if entry is not None]
    all_read = len(sessions) == len(entries)
    pagination = page.get("pagination")
    if pagination is None:  # an unpaginated answer is the whole list
        return sessions, all_read, None, None
    pagination = _as_object(pagination, "list.pagination")
    number = pagination.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        number = None  # informational; only used to detect a server repeating a page
    if not _as_bool(pagination.get("has_next", False), "list.pagination.has_next"):
        return sessions, all_read, number, None
    next_number = pagination.get("next_page_number")
    if isinstance(next_number, bool) or not isinstance(next_number, int):
        raise Malformed("list.pagination.has_next is true without a next_page_number")
    return sessions, all_read, number, next_number


def json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # requests' JSONDecodeError, also for an empty body
        pass
    raise Malformed("body is not JSON")


def parse_retry_after(value: str | None) -> float | None:
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
