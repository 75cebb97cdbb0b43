"""Typed errors of the Edgegap client: what a caller may do next, not what went wrong inside.

- `TransientError`: worth retrying later (connection failure, timeout, 429, 5xx, an unreadable 2xx).
  `AnswerLost` is the transient error after which the call may have taken effect at Edgegap (the
  request was sent, the answer never came): a create must then look for what it made.
- `PermanentError`: a 4xx other than 429; retrying the same call will not help.
"""

from __future__ import annotations


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


class AnswerLost(TransientError):
    """The request was sent but no answer came back (read timeout, connection cut mid-answer).

    The call may have taken effect at Edgegap: a lost create may have made a session, a lost
    authorize may have seated the user. Callers that are not idempotent look before retrying.
    Errors before sending (connection refused, connect timeout) are plain `TransientError`s.
    """


class MalformedResponseError(TransientError):
    """A 2xx (or a 404 page of a list) whose body does not fit the contract.

    Classed as transient: a garbled success is most likely a proxy, load balancer or partial
    outage, and a later identical call usually reads fine. Callers bound their retries anyway.
    Note for `create_session`: the session may exist at Edgegap even though we could not read it;
    reconciliation (list + delete unowned sessions) cleans such leaks up.
    """


class PaginationError(MalformedResponseError):
    """The list repeated a page or exceeded its page budget (a looping server)."""


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
