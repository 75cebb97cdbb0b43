"""The emulator's memory: its knobs and its relay sessions, shaped as Edgegap shapes them.

Plain data and bookkeeping only; no I/O, no asyncio. Everything random (ids, tokens, the shape of
a session's answers before it is ready, and the fault draws made elsewhere) comes from one
injectable `random.Random`, so a test can seed it.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relays.protocol import U32_MAX

# The emulator does no geolocation: every user is placed in Montreal, where Edgegap lives.
_LATITUDE, _LONGITUDE = 45.5017, -73.5673


PAGE_PAST_END = ("empty", "404", "400")


@dataclass(frozen=True)
class Knobs:
    """How the emulator behaves, and misbehaves. Settable at start and at runtime.

    Faults apply to the `/v1` API only, never to the `/_emulator` control endpoints. The rates are
    drawn per call (or per new session) from the emulator's seeded random generator.
    """

    ready_delay: float = 0.5  # seconds from creation until the session is ready
    validation_delay: float = 0.3  # seconds a peer stays Checking after its first PING
    rate_429: float = 0.0  # probability (0..1) that an API call answers 429
    retry_after: int | None = 1  # Retry-After header (seconds) on those 429s; None: no header
    rate_5xx: float = 0.0  # probability (0..1) that an API call answers 500 or 503
    slow: float = 0.0  # seconds to delay a reply, after the work is done
    slow_rate: float = 1.0  # probability (0..1) that a reply is delayed by `slow`
    lose_rate: float = 0.0  # probability (0..1) that a call's work is done but its answer lost
    never_ready: bool = False  # new sessions stay Initializing forever
    never_ready_rate: float = 0.0  # probability (0..1) that a new session stays Initializing
    error_state: str | None = None  # new sessions fail with this `error` instead of getting ready
    host_timeout: float | None = None  # seconds of host silence before SessionTimeout; None: never
    strict: bool = False  # refuse non-public IPs, tie tokens to their IP, 409 on a seated IP
    page_size: int = 10  # sessions per page of the list call
    page_past_end: str = "empty"  # a list page past the end: "empty" (200), "404" or "400"
    revoke_answers: str = "204"  # revoke-user answers "204" (no body) or "200" (the session)

    def __post_init__(self) -> None:
        for name in ("ready_delay", "validation_delay", "slow"):
            _check_number(name, getattr(self, name))
        for name in ("rate_429", "rate_5xx", "slow_rate", "lose_rate", "never_ready_rate"):
            _check_number(name, getattr(self, name), high=1)
        if self.retry_after is not None:
            _check_int("retry_after", self.retry_after, low=0)
        if self.host_timeout is not None:
            _check_number("host_timeout", self.host_timeout, low_exclusive=True)
        for name in ("never_ready", "strict"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if self.error_state is not None and not (
            isinstance(self.error_state, str) and self.error_state
        ):
            raise ValueError("error_state must be a non-empty string or null")
        _check_int("page_size", self.page_size, low=1)
        if self.page_past_end not in PAGE_PAST_END:
            raise ValueError('page_past_end must be "empty", "404" or "400"')
        if self.revoke_answers not in ("204", "200"):
            raise ValueError('revoke_answers must be "204" or "200"')

    def replace(self, changes: Mapping[str, Any]) -> Knobs:
        """A copy with `changes` applied; ValueError names an unknown knob or a bad value."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_number(
    name: str, value: Any, high: float = math.inf, *, low_exclusive: bool = False
) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= high
        or (low_exclusive and value == 0)
    ):
        if low_exclusive:
            bounds = "above 0 (or null)"
        else:
            bounds = f"from 0 to {high}" if math.isfinite(high) else "of at least 0"
        raise ValueError(f"{name} must be a number {bounds}")


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer of at least {low}")


@dataclass
class SessionUser:
    """One authorized player: the IP it was authorized for and its own user token."""

    ip_address: str
    authorization_token: int
    latitude: float = _LATITUDE
    longitude: float = _LONGITUDE

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# How a session that is not ready lists its users. Edgegap answers before READY carry no tokens,
# and a user may be listed with its IP and no token, or not at all (edgegap-relay.md §1): each
# session draws one of these shapes at creation, so a client meets every one of them.
PENDING_USERS = (
    "null_token",  # {ip_address, latitude, longitude, authorization_token: null}
    "no_token",  # {ip_address} only: no token key at all
    "empty",  # session_users: []
    "absent",  # no session_users key
)


@dataclass
class Session:
    """A relay session. The user it was created with first is the match host, for good: if that
    user is revoked, the session has no host (nobody is promoted).

    Tokens exist from creation (the relay needs them) but the REST answers show them only once the
    session is ready, as Edgegap does: until then `authorization_token` is null and the users are
    shown as `pending_users` says.
    """

    session_id: str
    authorization_token: int
    users: list[SessionUser]
    webhook_url: str | None = None
    status: str = "Initializing"
    ready: bool = False
    linked: bool = False
    error: str | None = None
    relay: dict[str, Any] | None = None
    pending_users: str = "null_token"  # one of PENDING_USERS
    timed_out: bool = False  # the host went silent: SessionTimeout, for good
    host_token: int = field(init=False)

    def __post_init__(self) -> None:
        self.host_token = self.users[0].authorization_token

    def user(self, token: int) -> SessionUser | None:
        """The authorized (not revoked) user holding this token, if any."""
        return next((u for u in self.users if u.authorization_token == token), None)

    def is_host(self, token: int) -> bool:
        return token == self.host_token and self.user(token) is not None

    def is_client(self, token: int) -> bool:
        return token != self.host_token and self.user(token) is not None

    def holds_ip(self, ip: str) -> bool:
        """Whether a (not revoked) user of this session was authorized for this IP."""
        return any(user.ip_address == ip for user in self.users)

    def link(self, host: str, ip: str, server_port: int, client_port: int) -> None:
        """Mark the session ready on a relay listening on these ports."""

        def port(number: int) -> dict[str, Any]:
            return {"port": number, "protocol": "UDP", "link": f"{host}:{number}"}

        self.relay = {
            "ip": ip,
            "host": host,
            "ports": {"server": port(server_port), "client": port(client_port)},
        }
        self.status, self.ready, self.linked = "READY", True, True

    def fail(self, error: str) -> None:
        self.status, self.error = "ERROR", error

    def time_out(self) -> None:
        """The host went silent: the relay answers SessionTimeout from now on. The REST session
        stays `ready` (its relay still exists and is billed) but reads status "SessionTimeout".
        """
        self.timed_out, self.status = True, "SessionTimeout"

    def as_json(self) -> dict[str, Any]:
        """The session object of the REST API: no token at all until the session is ready."""
        answer: dict[str, Any] = {
            "session_id": self.session_id,
            "authorization_token": self.authorization_token if self.ready else None,
            "status": self.status,
            "ready": self.ready,
            "linked": self.linked,
            "error": self.error,
            "session_users": [user.as_json() for user in self.users],
            "relay": self.relay,
            "webhook_url": self.webhook_url,
        }
        if not self.ready:
            if self.pending_users == "null_token":
                answer["session_users"] = [
                    {**user.as_json(), "authorization_token": None} for user in self.users
                ]
            elif self.pending_users == "no_token":
                answer["session_users"] = [{"ip_address": user.ip_address} for user in self.users]
            elif self.pending_users == "empty":
                answer["session_users"] = []
            else:
                del answer["session_users"]
        return answer


class SessionStore:
    """Every live session, in creation order (the order of the list call)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._sessions: dict[str, Session] = {}

    def all(self) -> list[Session]:
        return list(self._sessions.values())

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def create(self, ips: list[str], webhook_url: str | None = None) -> Session:
        """A new session with one user per IP, host first, each with a fresh user token."""
        session_id = self._new_id()
        tokens: set[int] = set()
        users = [SessionUser(ip, self._new_token(tokens)) for ip in ips]
        session = Session(
            session_id,
            self._new_token(set()),
            users,
            webhook_url,
            pending_users=self._rng.choice(PENDING_USERS),
        )
        self._sessions[session_id] = session
        return session

    def authorize(self, session: Session, ip: str) -> SessionUser:
        """Add a late joiner to the session and return it with its own new token."""
        # Never the host's token, even once revoked: the relay still knows the host by it.
        taken = {user.authorization_token for user in session.users} | {session.host_token}
        user = SessionUser(ip, self._new_token(taken))
        session.users.append(user)
        return user

    def revoke(self, session: Session, token: int) -> bool:
        """Remove the user holding this token; False when no user holds it."""
        user = session.user(token)
        if user is None:
            return False
        session.users.remove(user)
        return True

    def delete(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def _new_id(self) -> str:
        while True:
            session_id = f"{self._rng.getrandbits(48):012x}-S"  # like 7349356945f1-S
            if session_id not in self._sessions:
                return session_id

    def _new_token(self, taken: set[int]) -> int:
        # The full unsigned range, so clients meet tokens above 2^31 as they do at Edgegap. Zero
        # is skipped: it reads like "no token" in too many languages.
        while True:
            token = self._rng.randint(1, U32_MAX)
            if token not in taken:
                taken.add(token)
                return token
