"""The emulator's REST API: Edgegap's relay session contract (edgegap-relay.md §1) as raw ASGI.

Paths, bodies, status codes and quirks are Edgegap's: `Authorization: token <key>` (401 when
missing or malformed, 403 when the key is wrong), `{"message": ...}` error bodies, a list paginated
by offset in creation order (follow `has_next`; a delete shifts later sessions onto earlier pages),
answers without any token until the session is ready, 409 from authorize-user before then, 204
without a body on delete, a singular `session_user` from authorize-user, and 204 or 200 from
revoke-user. The fault knobs apply here, to `/v1` only, in this order: a 429 or 5xx (drawn before
any work, so nothing was done), the work, a slow reply, a lost reply (the work *was* done). The
`/_emulator` control endpoints (same auth) always answer:

    GET  /_emulator/config   the knobs
    POST /_emulator/config   change some knobs: a JSON object of knob names and values
    POST /_emulator/reset    delete every session (the knobs stay as they are)
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from relays.emulator.state import Knobs, Session
from relays.protocol import U32_MAX

if TYPE_CHECKING:
    from relays.emulator.server import Emulator

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"
_SESSION_PATH = re.compile(r"/v1/relays/sessions/(?P<session_id>[^/]+)")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or a 400."""
        try:
            data = json.loads(self.body)
        except ValueError:
            raise HttpError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the request body must be a JSON object")
        return data


@dataclass
class Response:
    status: int
    body: Any = None  # a JSON value, or None for no body at all
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class HttpError(Exception):
    """Ends a request with an Edgegap-style error: `{"message": ...}`."""

    def __init__(
        self, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(message)
        self.response = Response(status, {"message": message}, list(headers))


class EmulatorApp:
    """The ASGI application. It serves one `Emulator`, in the emulator's event loop."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._routes: dict[str, dict[str, Callable[..., Response]]] = {
            "/v1/relays/sessions": {"POST": self._create, "GET": self._list},
            "/v1/relays/sessions:authorize-user": {"POST": self._authorize_user},
            "/v1/relays/sessions:revoke-user": {"POST": self._revoke_user},
            "/_emulator/config": {"GET": self._get_config, "POST": self._set_config},
            "/_emulator/reset": {"POST": self._reset},
        }
        self._session_routes = {"GET": self._get, "DELETE": self._delete}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":  # lifespan is off and there are no websockets
            return
        request = await _read_request(scope, receive)
        response, lost = await self._respond(request)
        query = f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
        outcome = f"{response.status}, answer lost" if lost else str(response.status)
        logger.info("%s %s%s -> %s", request.method, request.path, query, outcome)
        if lost:
            await _lose(send, response, cut=self.emulator.rng.random() < 0.5)
        else:
            await _send(send, response)

    async def _respond(self, request: Request) -> tuple[Response, bool]:
        """The response, and whether to lose it instead of sending it."""
        try:
            self._authenticate(request)
            handler, params = self._resolve(request)
            if request.path.startswith(CONTROL_PREFIX):
                return handler(request, **params), False
        except HttpError as exc:
            return exc.response, False
        knobs = self.emulator.knobs
        rng = self.emulator.rng
        self.emulator.check_host_timeouts()  # so that GET and the list read SessionTimeout
        try:
            # Error faults strike before the handler runs: a 429 or a 5xx has created nothing.
            self._inject_fault(knobs)
        except HttpError as exc:
            fault = exc.response
        else:
            fault = None
            try:
                response = handler(request, **params)
            except HttpError as exc:
                response = exc.response
        # `slow` delays the reply after the work is done: a client that times out must cope with
        # a call that did succeed (a session created that it never heard of).
        if knobs.slow and (knobs.slow_rate == 1 or rng.random() < knobs.slow_rate):
            await asyncio.sleep(knobs.slow)
        if fault is not None:
            return fault, False
        # A lost answer is always one whose work was done: the hard case for a client, which
        # sees a connection error and cannot tell whether its call had any effect.
        return response, bool(knobs.lose_rate) and rng.random() < knobs.lose_rate

    def _authenticate(self, request: Request) -> None:
        scheme, _, key = (request.authorization or "").partition(" ")
        if scheme != "token" or not key:
            raise HttpError(
                401, 'missing or malformed header; expected "Authorization: token <key>"'
            )
        if not hmac.compare_digest(key.encode(), self.emulator.token.encode()):
            raise HttpError(403, "this API token is not allowed")

    def _resolve(self, request: Request) -> tuple[Callable[..., Response], dict[str, str]]:
        handlers, params = self._routes.get(request.path), {}
        if handlers is None and (match := _SESSION_PATH.fullmatch(request.path)):
            handlers, params = self._session_routes, match.groupdict()
        if handlers is None:
            raise HttpError(404, f"no such path: {request.path}")
        if request.method not in handlers:
            raise HttpError(405, f"{request.method} is not allowed on {request.path}")
        return handlers[request.method], params

    def _inject_fault(self, knobs: Knobs) -> None:
        rng = self.emulator.rng
        if rng.random() < knobs.rate_429:
            headers = []
            if knobs.retry_after is not None:
                headers.append((b"retry-after", str(knobs.retry_after).encode()))
            raise HttpError(429, "too many requests (emulated fault)", headers)
        if rng.random() < knobs.rate_5xx:
            raise HttpError(rng.choice((500, 503)), "temporarily unavailable (emulated fault)")

    # --- Relay sessions ----------------------------------------------------------------------

    def _create(self, request: Request) -> Response:
        body = request.json()
        users = body.get("users")
        if not isinstance(users, list) or not users:
            raise HttpError(400, "users must be a non-empty list of {ip} objects")
        strict = self.emulator.knobs.strict
        ips = [
            _ip(user.get("ip") if isinstance(user, dict) else None, f"users[{index}].ip", strict)
            for index, user in enumerate(users)
        ]
        _check_filters(body.get("filters"))
        webhook_url = body.get("webhook_url")
        if webhook_url is not None and not _is_http_url(webhook_url):
            raise HttpError(400, "webhook_url must be an http(s) URL")
        session = self.emulator.create_session(ips, webhook_url)
        return Response(200, session.as_json())

    def _get(self, request: Request, session_id: str) -> Response:
        return Response(200, self._session(session_id).as_json())

    def _list(self, request: Request) -> Response:
        try:
            number = int(request.query.get("page", "1"))
        except ValueError:
            number = 0
        if number < 1:
            raise HttpError(400, "page must be a positive integer")
        knobs = self.emulator.knobs
        size = knobs.page_size
        # Offset pagination over the sessions in creation order, as Edgegap's: deleting a session
        # shifts every later one a place back, so a client paging through meanwhile skips one.
        sessions = self.emulator.store.all()
        num_pages = max(1, math.ceil(len(sessions) / size))
        # Sessions deleted while a client pages through shorten the list under its feet, so the
        # page it asks for next may no longer exist. Edgegap's answer to that is unknown.
        if number > num_pages and knobs.page_past_end != "empty":
            raise HttpError(
                int(knobs.page_past_end), f"page {number} does not exist: {num_pages} page(s)"
            )
        page = sessions[(number - 1) * size : number * size]
        has_next, has_previous = number < num_pages, number > 1
        return Response(
            200,
            {
                "sessions": [session.as_json() for session in page],
                "total_count": len(sessions),
                "pagination": {
                    "number": number,
                    "next_page_number": number + 1 if has_next else None,
                    "previous_page_number": number - 1 if has_previous else None,
                    "paginator": {"num_pages": num_pages},
                    "has_next": has_next,
                    "has_previous": has_previous,
                },
            },
        )

    def _delete(self, request: Request, session_id: str) -> Response:
        if not self.emulator.delete_session(session_id):
            raise HttpError(404, f"relay session {session_id} not found")
        return Response(204)

    def _authorize_user(self, request: Request) -> Response:
        body = request.json()
        session_id = _session_id(body)
        strict = self.emulator.knobs.strict
        ip = _ip(body.get("user_ip"), "user_ip", strict)
        session = self._session(session_id)
        if not session.ready:
            raise HttpError(409, f"relay session {session_id} is not ready yet")
        if strict and session.holds_ip(ip):
            raise HttpError(409, f"a user of relay session {session_id} already has this IP")
        user = self.emulator.store.authorize(session, ip)
        answer = session.as_json()
        answer.pop("session_users", None)
        answer["session_user"] = user.as_json()  # singular, as Edgegap answers
        return Response(200, answer)

    def _revoke_user(self, request: Request) -> Response:
        body = request.json()
        session_id = _session_id(body)
        token = body.get("authorization_token")
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token <= U32_MAX:
            raise HttpError(400, "authorization_token must be an unsigned 32-bit integer")
        session = self._session(session_id)
        if not self.emulator.store.revoke(session, token):
            raise HttpError(404, "no user of this session holds that authorization_token")
        if self.emulator.knobs.revoke_answers == "200":
            return Response(200, session.as_json())
        return Response(204)

    def _session(self, session_id: str) -> Session:
        session = self.emulator.store.get(session_id)
        if session is None:
            raise HttpError(404, f"relay session {session_id} not found")
        return session

    # --- Control -----------------------------------------------------------------------------

    def _get_config(self, request: Request) -> Response:
        return Response(200, self.emulator.knobs.as_dict())

    def _set_config(self, request: Request) -> Response:
        changes = request.json()
        try:
            knobs = self.emulator.configure(changes)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return Response(200, knobs.as_dict())

    def _reset(self, request: Request) -> Response:
        self.emulator.reset()
        return Response(204)


def _session_id(body: dict[str, Any]) -> str:
    session_id = body.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise HttpError(400, "session_id must be a non-empty string")
    return session_id


def _ip(value: Any, where: str, public_only: bool = False) -> str:
    # Loopback and private addresses pass unless `strict`: the dev stack's players are all on
    # 127.0.0.1, while Edgegap, which locates players by IP to pick a relay, may refuse them.
    try:
        if not isinstance(value, str):  # ip_address(5) would be 0.0.0.5
            raise ValueError
        address = ipaddress.ip_address(value)
    except ValueError:
        raise HttpError(400, f"{where} must be an IP address, got {value!r}") from None
    # `is_global` follows IANA's special-purpose registries: private, loopback, link-local,
    # shared (CGNAT), documentation and benchmarking ranges are all refused.
    if public_only and not (address.is_global and not address.is_multicast):
        raise HttpError(400, f"{where} must be a public IP address, got {value!r}")
    return str(address)


def _check_filters(filters: Any) -> None:
    # Validated for shape, then ignored: the emulator has a single location.
    def well_formed(item: Any) -> bool:
        return (
            isinstance(item, dict)
            and isinstance(item.get("field"), str)
            and isinstance(item.get("values"), list)
            and item.get("filter_type") in ("any", "all", "not")
        )

    if filters is not None and not (isinstance(filters, list) and all(map(well_formed, filters))):
        raise HttpError(400, "filters must be a list of {field, values, filter_type: any|all|not}")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


async def _read_request(scope: dict, receive: Callable) -> Request:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])  # ASGI lower-cases header names
    authorization = headers.get(b"authorization")
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=dict(parse_qsl(scope["query_string"].decode("latin-1"))),
        authorization=authorization.decode("latin-1") if authorization is not None else None,
        body=b"".join(chunks),
    )


def _encode(response: Response) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = list(response.headers)
    body = b""
    if response.body is not None:
        body = json.dumps(response.body).encode()
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    return headers, body


async def _send(send: Callable, response: Response) -> None:
    headers, body = _encode(response)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lose(send: Callable, response: Response, *, cut: bool) -> None:
    """Close the connection instead of answering: with nothing sent at all, or (`cut`) after the
    status, the headers and half the body. Either way the client sees a broken connection, never
    an HTTP error status.
    """
    status, (headers, body) = response.status, _encode(response)
    transport = _transport(send)
    if transport is None and not body:  # a 204: give it a body to cut
        status, headers, body = 200, [(b"content-length", b"2")], b"{}"
    if (cut and body) or transport is None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
    if transport is None:
        # Returning mid-body makes any ASGI server close the connection. (Returning before the
        # start would make it answer 500 instead, hence the partial body.)
        return
    transport.close()  # after flushing what was written
    # Once uvicorn sees the disconnect it neither sends a 500 for the missing answer nor logs
    # an error about it.
    for _ in range(100):
        if getattr(send.__self__, "disconnected", True):
            break
        await asyncio.sleep(0.01)


def _transport(send: Callable) -> Any:
    # ASGI offers no way to drop a connection without answering: an app that returns without
    # a response gets a 500 written for it. uvicorn's `send` is a method of its request cycle,
    # which holds the connection's asyncio transport; the emulator reaches for it. Tests pin that
    # the client sees a connection error, so a uvicorn that changes this fails them loudly.
    return getattr(getattr(send, "__self__", None), "transport", None)
