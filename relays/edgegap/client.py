"""The one door to Edgegap's Distributed Relay REST API (shared docs: edgegap-relay.md).

Only this module knows the Edgegap base URL, the API token, the headers and the timeouts. It speaks
the same contract to Edgegap and to the local relay emulator: only the base URL and token differ,
and nothing here knows the emulator exists.

Every call goes through `requests` with a timeout and turns the outcome into typed results
(`EdgegapSession`, `SessionUser`, `RelayEndpoint`, `SessionListing`; see `contract`) or typed
errors that tasks act on (see `errors`):

- `TransientError`: connection failures, timeouts, 429, 5xx, and a 2xx whose body we cannot read
  (`MalformedResponseError`). Retry with backoff, honouring `retry_after` when set. `AnswerLost`
  says the request was sent and may have taken effect (read timeout, answer cut off).
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

import ipaddress
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import requests
import urllib3
from django.core.exceptions import ImproperlyConfigured

from relays.edgegap.contract import (
    MESSAGE_LIMIT,
    U32_MAX,
    EdgegapSession,
    Malformed,
    SessionListing,
    SessionUser,
    json_body,
    parse_authorized_user,
    parse_page,
    parse_retry_after,
    parse_session,
)
from relays.edgegap.errors import (
    AnswerLost,
    EdgegapError,
    MalformedResponseError,
    PermanentError,
    SessionNotFound,
    TransientError,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

SESSIONS_PATH = "/v1/relays/sessions"
# The colon is part of the path (Google-style custom method), not a port: edgegap-relay.md §1.
AUTHORIZE_USER_PATH = "/v1/relays/sessions:authorize-user"
REVOKE_USER_PATH = "/v1/relays/sessions:revoke-user"

DEFAULT_MAX_PAGES = 1000


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


# The answer started and broke: the request was certainly sent.
_ANSWER_BROKEN = (
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
    ) -> EdgegapSession:
        """`POST /v1/relays/sessions` for these players' public IPs, **host first**.

        The answer is normally not ready yet (`ready=False`, `relay=None`): poll `get_session`.
        Its `users` (only those that have a token yet) may come back in any order; use
        `EdgegapSession.users_for(ips)` to pair them with seats. Not idempotent: after an
        `AnswerLost` or a `MalformedResponseError` the session may exist at Edgegap (look before
        creating again); after any other `TransientError` nothing was made. `filters` is passed
        as given, e.g.
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

    def get_session(self, session_id: str) -> EdgegapSession:
        """`GET /v1/relays/sessions/{id}`. Raises `SessionNotFound` on 404 (e.g. deleted)."""
        return self._session_call("GET", self._session_path(session_id), None)

    def list_sessions(
        self, *, max_pages: int = DEFAULT_MAX_PAGES, page_attempts: int = 3
    ) -> SessionListing:
        """The account's sessions, `GET /v1/relays/sessions` page by page, as far as readable.

        Whether `?page=&limit=` is honoured is unknown (edgegap-relay.md §1), so this follows
        `pagination.has_next` / `next_page_number` until `has_next` is false. A body without
        `pagination` is one page. Sessions seen twice (a page shifting under deletes) are returned
        once.

        A page that fails transiently (429, 5xx, a lost answer) is asked again, up to
        `page_attempts` times in all, after a short pause: every page of a long list must come
        through for the walk to be complete, so one fault in three would otherwise leave nearly
        every walk of a few pages incomplete. A failure on the first page then raises (nothing
        was seen). A later page that still fails, that has vanished (404 or 400: the list shrank
        while it was read), that holds an unreadable entry, or a server repeating pages or
        exceeding `max_pages`, ends the walk with `complete=False`: the caller acts on what it
        saw and on nothing else.
        """
        sessions: dict[str, EdgegapSession] = {}
        requested: set[int] = set()
        reported: set[int] = set()
        complete = True
        path = SESSIONS_PATH
        for page_index in range(max_pages):
            try:
                page, all_read, number, next_number = self._list_page(path, page_attempts)
            except (TransientError, PermanentError) as exc:
                if page_index == 0:
                    raise
                logger.warning("edgegap list stopped at %s: %s", path, exc)
                return SessionListing(tuple(sessions.values()), complete=False)
            complete = complete and all_read
            for session in page:
                seen = sessions.get(session.session_id)
                if seen is None or (seen.garbled and not session.garbled):  # keep the readable copy
                    sessions[session.session_id] = session
            if next_number is None:
                return SessionListing(tuple(sessions.values()), complete=complete)
            looping = (number is not None and number in reported) or (
                next_number in requested or next_number == number
            )
            if looping:
                logger.warning("edgegap list stopped at %s: the server repeats pages", path)
                return SessionListing(tuple(sessions.values()), complete=False)
            if number is not None:
                reported.add(number)
            requested.add(next_number)
            path = f"{SESSIONS_PATH}?page={next_number}"
        logger.warning("edgegap list stopped: still more pages after %d", max_pages)
        return SessionListing(tuple(sessions.values()), complete=False)

    def _list_page(self, path: str, attempts: int):
        if attempts < 1:
            raise ValueError("page_attempts must be at least 1")
        for attempt in range(1, attempts + 1):
            try:
                response = self._send("GET", path, None)
                return self._read(response, "GET", path, parse_page)
            except TransientError as exc:
                if attempt == attempts:
                    raise
                # Short pauses: a walk holds a lock and a worker thread. Retry-After is a floor
                # up to a second; a longer one ends the walk (the caller retries later).
                pause = max(0.1 * attempt, exc.retry_after or 0)
                if pause > 1.0:
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

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
        return self._read(response, "POST", AUTHORIZE_USER_PATH, parse_authorized_user)

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

    def _session_call(self, method: str, path: str, body: Any) -> EdgegapSession:
        not_found = SessionNotFound if method == "GET" else PermanentError
        response = self._send(method, path, body, not_found=not_found)
        return self._read(response, method, path, parse_session)

    @staticmethod
    def _read(response: requests.Response, method: str, path: str, parse: Callable[[Any], T]) -> T:
        """Parse a 2xx JSON body, turning any contract mismatch into MalformedResponseError."""
        try:
            return parse(json_body(response))
        except Malformed as exc:
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
        return self._auth.redact(" ".join(message.split()))[:MESSAGE_LIMIT]

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
        except requests.ConnectTimeout:
            failure = (TransientError, "timed out connecting")  # nothing was sent
        except requests.Timeout as exc:
            failure = (AnswerLost, f"timed out waiting for the answer ({type(exc).__name__})")
        except (requests.ConnectionError, *_ANSWER_BROKEN) as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            detail = type(exc).__name__ + (f"/{type(reason).__name__}" if reason else "")
            # Refused or unresolvable: the request never left. Anything else (reset, closed
            # without an answer, cut off mid-answer) may have reached Edgegap.
            never_sent = isinstance(reason, urllib3.exceptions.NewConnectionError)
            error_class = TransientError if never_sent else AnswerLost
            failure = (error_class, f"connection failed ({detail})")
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
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
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
