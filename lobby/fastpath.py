"""The lean path: what game clients poll, answered without Django's request machinery.

Game clients poll `GET /api/v1/players/me/assignment`, `GET /api/v1/players/me/events` (nothing
new, `wait=0`), the lobby `GET /api/v1/lobbies/{id}` and browse `GET /api/v1/lobbies`; load
balancers poll `/healthz`. Through Django's ASGI handler each of these paid for a request object,
the middleware stack, URL resolution, DRF's view machinery, a dozen sync/async thread hops, the
ORM compiling its SQL and, for the throttles, a new Redis connection per request
(bench/RESULTS.md, issue 11). Here, in front of Django:

- the token is looked up once per `TOKEN_CACHE_SECONDS` per process (lobby.authentication);
- throttles are counted in memory and shared through Redis in the background (lobby.throttles);
- answers are kept rendered while their validator stands still (lobby.etags): the assignment per
  player under its `event_seq`, the lobby detail under the lobby's `version`; `If-None-Match`
  is answered `304` from the validator alone, as the DRF views do;
- the common poll (token cached, `last_seen_at` fresh) is answered in the event loop: the
  `event_seq`s of all polls in flight are read in one statement (_SeqReader), and polls of the
  same lobby or browse page that arrive together share one read (_Shared);
- other database work is one hop to this process's lean database threads, with SQL compiled by
  the ORM once per process;
- the answer is rendered by the same renderers (DRF's JSONRenderer, Django's JSON encoder, the
  lobby snapshot of lobby.selectors) into the same bytes, with the headers the middleware would
  add computed by that middleware.

The lean path answers only the common, exact case: a `GET` with `Authorization: Token <key>` for
a player, an `Accept` that takes JSON, a valid `Host`, simple query parameters. Anything else
(cookies instead of a token, an unknown token, `wait` > 0, a bad parameter or lobby id, a page
past the end, HEAD, any error of its own) goes to Django unchanged, which stays the definition of
the API; tests/lobby/test_fastpath.py proves both give the same answers where the lean path
answers.

Not in the admission gate (config/admission.py): like async views, nothing here holds a thread or
a database connection while it waits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.request import split_domain_port, validate_host
from django.utils.encoding import iri_to_uri
from rest_framework.renderers import JSONRenderer
from rest_framework.serializers import DateTimeField
from rest_framework.utils.urls import remove_query_param, replace_query_param

from lobby import etags, throttles
from lobby.authentication import cached_token_entry, split_authorization, token_entry

logger = logging.getLogger(__name__)

ASSIGNMENT = "/api/v1/players/me/assignment"
EVENTS = "/api/v1/players/me/events"
LOBBIES = "/api/v1/lobbies"
LOBBY = "/api/v1/lobbies/{id}"
# Django's `<uuid:...>` converter: lower-case only; anything else is Django's to refuse.
_LOBBY_PATH = re.compile(
    r"/api/v1/lobbies/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\Z"
)
HEALTHZ = "/healthz"

# Middleware whose effect on these answers the lean path reproduces (headers) or does not need
# (sessions, CSRF and messages do nothing to a token-authenticated GET). With any other
# middleware installed the lean path stands aside: it cannot know what that one would do.
KNOWN_MIDDLEWARE = frozenset(
    {
        "django.middleware.security.SecurityMiddleware",
        "servestatic.middleware.ServeStaticMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "config.errors.OverloadMiddleware",
    }
)
_JSON_ACCEPTS = frozenset({b"", b"*/*", b"application/json", b"application/json, */*"})
_DIGITS = re.compile(r"[0-9]{1,9}\Z")
_INT = re.compile(r"-?[0-9]{1,19}\Z")


class _Answer(Exception):
    """Raised inside a handler to answer at once (a 404, a 429)."""

    def __init__(self, status: int, body: bytes, headers: list):
        self.status, self.body, self.headers = status, body, headers


# --- Headers the middleware would add --------------------------------------------------------


def _middleware_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """What SecurityMiddleware and XFrameOptionsMiddleware add to a JSON answer, as they add it."""
    from django.middleware.clickjacking import XFrameOptionsMiddleware
    from django.middleware.security import SecurityMiddleware

    request = HttpRequest()
    request.is_secure = lambda: secure
    response = HttpResponse()
    for middleware in (SecurityMiddleware, XFrameOptionsMiddleware):
        if f"{middleware.__module__}.{middleware.__name__}" in settings.MIDDLEWARE:
            response = middleware(HttpResponse).process_response(request, response)
    return [
        (name.lower().encode("latin1"), value.encode("latin1"))
        for name, value in response.items()
        if name.lower() not in ("content-type", "content-length")
    ]


def _drf_view_headers(view_class) -> list[tuple[bytes, bytes]]:
    """The headers DRF puts on every answer of this view (Allow, and Vary when it negotiates)."""
    view = view_class()
    view.setup(HttpRequest())  # as as_view() does: it answers HEAD where it answers GET
    return [
        (name.lower().encode("latin1"), value.encode("latin1"))
        for name, value in view.default_response_headers.items()
    ]


class _Setup:
    """Everything derived from settings and the views once per process (lazily: settings and
    apps must be ready)."""

    def __init__(self):
        from config import health
        from lobby import apis

        self.enabled = set(settings.MIDDLEWARE) <= KNOWN_MIDDLEWARE and not getattr(
            settings, "USE_X_FORWARDED_HOST", False
        )
        if not self.enabled:
            unknown = sorted(set(settings.MIDDLEWARE) - KNOWN_MIDDLEWARE)
            logger.warning("lean poll paths off: unknown middleware %s", unknown)
        self.allowed_hosts = settings.ALLOWED_HOSTS or (
            [".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
        )
        self.proxy_ssl = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        self.ssl_redirect = getattr(settings, "SECURE_SSL_REDIRECT", False)
        self.security = {secure: _middleware_headers(secure) for secure in (False, True)}
        self.hosts: dict[bytes, bool] = {}
        # DRF's own headers of each view (Allow, Vary), as its views compute them.
        self.drf_headers = {
            path: _drf_view_headers(view)
            for path, view in (
                (ASSIGNMENT, apis.AssignmentApi),
                (LOBBIES, apis.LobbyListApi),
                (LOBBY, apis.LobbyDetailApi),
            )
        }
        self.renderer = JSONRenderer()
        self.datetime = DateTimeField()
        # The probe's answer never changes: the view's own, rendered once.
        probe = HttpRequest()
        probe.method = "GET"
        health_response = health.healthz(probe)
        self.healthz = (
            health_response.status_code,
            health_response.content,
            [(b"content-type", health_response["Content-Type"].encode("latin1"))],
        )

    def host_ok(self, host: bytes) -> bool:
        known = self.hosts.get(host)
        if known is None:
            domain, _port = split_domain_port(host.decode("latin1"))
            known = bool(domain) and validate_host(domain, self.allowed_hosts)
            if len(self.hosts) < 1000:
                self.hosts[host] = known
        return known


_setup: _Setup | None = None


def setup() -> _Setup:
    global _setup
    if _setup is None:
        _setup = _Setup()
    return _setup


def forget_setup() -> None:
    """Tests that change settings call this so the next request derives everything again."""
    global _setup
    _setup = None
    _ready.clear()
    _kept_lobbies.clear()


# --- The lean database thread ----------------------------------------------------------------

# SQLite: one thread, whose connection stays open between requests (a query costs no wait worth
# overlapping). PostgreSQL: two threads, so that round trips to the server overlap (within the two
# connections the admission gate leaves free of its pool); each holds a connection only while it
# has work, and gives it back when idle.
_executor = ThreadPoolExecutor(
    max_workers=1 if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") else 2,
    thread_name_prefix="lean-db",
)


def _db_job(fn, *args):
    try:
        return fn(*args)
    except _Answer:
        raise
    except Exception:
        # A broken or exhausted connection must not poison the next request: start afresh.
        connection.close()
        raise
    finally:
        if connection.vendor != "sqlite" and _executor._work_queue.empty():
            connection.close()  # back to the pool while nothing waits for this thread


async def _in_db_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_executor, _db_job, fn, *args)


class _Compiled:
    """A queryset's SQL compiled once; run with new values for its marked parameters."""

    def __init__(self, queryset, markers: dict):
        self.compiler = queryset.query.get_compiler(using="default")
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        # name -> [(index, None)] for a parameter that is the marker itself, or
        # [(index, template)] for a LIKE pattern built around it (icontains).
        self.slots = {name: [] for name in markers}
        for i, param in enumerate(self.params):
            for name, marker in markers.items():
                if param == marker:
                    self.slots[name].append((i, None))
                elif isinstance(param, str) and isinstance(marker, str) and marker in param:
                    self.slots[name].append((i, param))
        self.converters = self.compiler.get_converters([col for col, _, _ in self.compiler.select])
        self.markers = markers

    def rows(self, **values) -> list:
        params = list(self.params)
        for name, value in values.items():
            for i, template in self.slots[name]:
                if template is None:
                    params[i] = value
                else:
                    like = connection.ops.prep_for_like_query(value)
                    params[i] = template.replace(self.markers[name], like)
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if self.converters:
            rows = list(self.compiler.apply_converters(rows, self.converters))
        return rows


_compiled: dict[str, _Compiled] = {}
_compiled_vendor: list = [None]
_PLAYER_MARK = 987654321987
_HOLDER_MARK = "player:987654321987"


def _compiled_query(name: str, build) -> _Compiled:
    # Compiled in the lean thread, for its connection; again if the database changed (tests).
    if _compiled_vendor[0] != connection.settings_dict.get("NAME"):
        _compiled.clear()
        _compiled_vendor[0] = connection.settings_dict.get("NAME")
    query = _compiled.get(name)
    if query is None:
        query = _compiled[name] = build()
    return query


# Lobby states in which a member has an assignment (lobby.selectors.assignment_get).
_ASSIGNED_STATES = frozenset({"allocating", "ready", "failed"})
_ASSIGNMENT_COLUMNS = (
    "lobby_id", "lobby__state", "lobby__host_id", "lobby__failure_reason",
    "lobby__relay_session__status", "lobby__relay_session__relay_host",
    "lobby__relay_session__relay_ip", "lobby__relay_session__server_port",
    "lobby__relay_session__client_port", "lobby__relay_session__session_token",
    "seat_ordinal", "seat_token",
)  # fmt: skip


def _assignment_query() -> _Compiled:
    from django.db.models import OuterRef, Subquery

    from lobby.models import Membership
    from relays.models import Seat

    seats = Seat.objects.filter(
        session=OuterRef("lobby__relay_session"), holder=_HOLDER_MARK, revoked=False
    ).order_by("pk")
    queryset = (
        Membership.objects.filter(player_id=_PLAYER_MARK, state=Membership.State.ACTIVE)
        .annotate(
            seat_ordinal=Subquery(seats.values("ordinal")[:1]),
            seat_token=Subquery(seats.values("user_token")[:1]),
        )
        .values_list(*_ASSIGNMENT_COLUMNS)
        # At most one active membership per player (a unique constraint): no sort needed.
        .order_by()[:1]
    )
    return _Compiled(queryset, {"player": _PLAYER_MARK, "holder": _HOLDER_MARK})


def _assignment_from_row(row, player_id: int) -> dict:
    """`lobby.selectors.assignment_for`, from one row (tests hold the two to the same answers)."""
    from lobby.models import Lobby
    from relays.models import RelaySession, Seat

    (lobby_id, state, host_id, failure_reason, session_status, relay_host, relay_ip,
     server_port, client_port, session_token, seat_ordinal, seat_token) = row  # fmt: skip
    has_seat = seat_ordinal is not None
    seat_role = Seat(ordinal=seat_ordinal).role if has_seat else None
    ready = (
        state == Lobby.State.READY
        and session_status == RelaySession.Status.READY
        and has_seat
        and seat_token is not None
    )
    status = "failed" if state == Lobby.State.FAILED else ("ready" if ready else "pending")
    role = seat_role if has_seat else ("server" if host_id == player_id else "client")
    relay = None
    if ready:
        port = server_port if role == "server" else client_port
        relay = {"host": relay_host, "ip": relay_ip, "port": port, "protocol": "UDP"}
    return {
        "lobby_id": str(lobby_id),
        "status": status,
        "role": role,
        "relay": relay,
        "session_authorization_token": session_token if ready else None,
        "user_authorization_token": seat_token if ready else None,
        "error": (failure_reason or None) if status == "failed" else None,
    }


def _event_seq_query() -> _Compiled:
    from lobby.models import Player

    queryset = Player.objects.filter(pk=_PLAYER_MARK).values_list("event_seq")
    return _Compiled(queryset, {"player": _PLAYER_MARK})


class _SeqReader:
    """Players' `event_seq`, read for many polls in one statement.

    The common poll (its token checked within TOKEN_CACHE_SECONDS, its `last_seen_at` fresh, its
    answer kept) needs nothing from the database but this one number. Polls that arrive while a
    read is in flight wait for the next read, together: one hop to the lean database thread and
    one round trip for all of them, however many connections poll at once. One reader per event
    loop (tests run several loops).
    """

    MAX_BATCH = 256

    def __init__(self):
        self.pending: dict[int, list[asyncio.Future]] = {}
        self.running = False
        self.task: asyncio.Task | None = None

    async def get(self, player_id: int) -> int | None:
        future = asyncio.get_running_loop().create_future()
        self.pending.setdefault(player_id, []).append(future)
        if not self.running:
            self.running = True
            self.task = asyncio.get_running_loop().create_task(self._run())  # held: see _Shared
        return await future

    async def _run(self) -> None:
        try:
            while self.pending:
                batch = dict(list(self.pending.items())[: self.MAX_BATCH])
                for player_id in batch:
                    del self.pending[player_id]
                try:
                    seqs = await _in_db_thread(_read_seqs, list(batch))
                except Exception as exc:  # each waiting poll fails over to Django
                    seqs, failure = {}, exc
                else:
                    failure = None
                for player_id, futures in batch.items():
                    for future in futures:
                        if future.done():
                            continue
                        if failure is not None:
                            future.set_exception(failure)
                        else:
                            future.set_result(seqs.get(player_id))
        finally:
            self.running = False


_readers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _per_loop(registry: weakref.WeakKeyDictionary, make):
    """The running event loop's one instance of `make()` (it waits on futures of that loop)."""
    loop = asyncio.get_running_loop()
    found = registry.get(loop)
    if found is None:
        found = registry[loop] = make()
    return found


def _seq_reader() -> _SeqReader:
    return _per_loop(_readers, _SeqReader)


_SEQ_SQL: dict[tuple, str] = {}


def _read_seqs(player_ids: list[int]) -> dict[int, int]:
    from lobby.models import Player

    key = (connection.vendor, len(player_ids))
    sql = _SEQ_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        pk, seq = Player._meta.pk.column, Player._meta.get_field("event_seq").column
        marks = ", ".join(["%s"] * len(player_ids))
        # Only quoted names from the model and placeholders are formatted in.
        sql = f"SELECT {quote(pk)}, {quote(seq)} FROM {quote(Player._meta.db_table)} "  # noqa: S608
        sql += f"WHERE {quote(pk)} IN ({marks})"
        if len(_SEQ_SQL) < 512:
            _SEQ_SQL[key] = sql
    with connection.cursor() as cursor:
        cursor.execute(sql, player_ids)
        return dict(cursor.fetchall())


def _in_loop(entry) -> bool:
    """Whether a poll by this token needs no database but its event_seq: the token checked
    within TOKEN_CACHE_SECONDS and the player's `last_seen_at` fresh (lobby.permissions.IsPlayer
    touches it)."""
    return entry is not None and not _touch_due(entry)


# --- Requests --------------------------------------------------------------------------------


class _Request:
    """The little of a request the lean path reads (and `lobby.ip.client_ip` takes)."""

    __slots__ = ("META", "headers", "scope", "secure")

    def __init__(self, scope, headers: dict):
        self.scope = scope
        self.headers = headers
        client = scope.get("client")
        self.META = {"REMOTE_ADDR": client[0] if client else ""}
        forwarded = headers.get(b"x-forwarded-for")
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded.decode("latin1")
        self.secure = scope.get("scheme") == "https"


def _is_secure(request: _Request, conf: _Setup) -> bool:
    if conf.proxy_ssl:
        header, value = conf.proxy_ssl
        name = header.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
        raw = request.headers.get(name)
        if raw is not None:
            return raw.decode("latin1").split(",", 1)[0].strip() == value
    return request.secure


def _json_headers(conf: _Setup, secure: bool, extra=()) -> list:
    return [(b"content-type", b"application/json"), *extra, *conf.security[secure]]


def _drf_answer(conf, secure, path, status, data, extra=()) -> tuple[int, bytes, list]:
    body = conf.renderer.render(data)
    return status, body, _json_headers(conf, secure, (*extra, *conf.drf_headers[path]))


def _django_json(data) -> bytes:
    return json.dumps(data, cls=DjangoJSONEncoder).encode()  # what JsonResponse writes


def _authenticated(key: str):
    """The token's entry (read in the lean thread when not cached), touched like IsPlayer does."""
    from lobby.services import player_touch

    entry = token_entry(key)
    if entry is not None:
        player_touch(entry)
    return entry


def _touch_due(entry) -> bool:
    from django.utils import timezone

    from lobby.services import SEEN_RESOLUTION

    return entry.last_seen_at is None or timezone.now() - entry.last_seen_at >= SEEN_RESOLUTION


# --- Handlers: each returns (status, body, headers), or None for Django to answer ------------


async def _healthz(request, conf, secure, query):
    status, body, headers = conf.healthz
    return status, body, [*headers, *conf.security[secure]]


class _Kept:
    """Rendered answers kept in memory: at most `size`, the one filed longest ago forgotten first
    (a put files its key anew). Reads take no lock: a dict read is atomic in CPython."""

    def __init__(self, size: int):
        self.size = size
        self.items: dict = {}
        self.lock = threading.Lock()

    def get(self, key):
        return self.items.get(key)

    def put(self, key, value) -> None:
        with self.lock:
            self.items.pop(key, None)
            self.items[key] = value
            while len(self.items) > self.size:
                del self.items[next(iter(self.items))]

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


class _ReadyAnswers(_Kept):
    """Each player's last assignment answer, kept with the `event_seq` read before it was built.

    Every change a player's assignment can see writes an event to that player in the same
    transaction (lobby.etags), so while the player's `event_seq` has not moved the answer has
    not changed either: a poll then costs one primary-key read instead of the four-table query.
    The sequence is read before the answer, so an answer is never filed under a newer one.
    """

    def answer(self, player_id: int, event_seq: int):
        kept = self.get(player_id)
        return kept[1:] if kept is not None and kept[0] == event_seq else None


_ready = _ReadyAnswers(50_000)


def _assignment_body(player_id: int) -> tuple[int, bytes]:
    rows = _compiled_query("assignment", _assignment_query).rows(
        player=player_id, holder=f"player:{player_id}"
    )
    if not rows or rows[0][1] not in _ASSIGNED_STATES:
        from lobby.errors import error_body

        body = error_body("no_assignment", "You have no relay assignment: no match has started.")
        return 404, setup().renderer.render(body)
    return 200, setup().renderer.render(_assignment_from_row(rows[0], player_id))


def _assignment_job(key, entry, if_none_match, request, conf, secure):
    if entry is None or _touch_due(entry):
        entry = _authenticated(key)
        if entry is None:
            return None
    _throttle_drf(entry, request, conf, secure, ASSIGNMENT)
    (event_seq,) = _compiled_query("event_seq", _event_seq_query).rows(player=entry.pk)[0]
    answer = _ready.answer(entry.pk, event_seq)
    if answer is None:
        answer = _assignment_body(entry.pk)
        _ready.put(entry.pk, (event_seq, *answer))
    return _assignment_answer(entry.pk, event_seq, answer, if_none_match, conf, secure)


def _assignment_answer(player_id, event_seq, answer, if_none_match, conf, secure):
    status, body = answer
    if status != 200:
        return status, body, _json_headers(conf, secure, conf.drf_headers[ASSIGNMENT])
    etag = etags.assignment_etag(player_id=player_id, event_seq=event_seq)
    if etags.not_modified(if_none_match, etag):
        return _not_modified(conf, secure, ASSIGNMENT, etag)
    extra = ((b"etag", etag.encode()), *conf.drf_headers[ASSIGNMENT])
    return status, body, _json_headers(conf, secure, extra)


def _not_modified(conf, secure, path, etag: str) -> tuple[int, bytes, list]:
    """What `lobby.etags.not_modified_response` becomes through DRF and the middleware."""
    return 304, b"", [(b"etag", etag.encode()), *conf.drf_headers[path], *conf.security[secure]]


def _throttle_drf(entry, request, conf, secure, path):
    """The API views' throttles: player and address, both counted, the longest wait told."""
    from lobby.errors import error_body
    from lobby.ip import client_ip

    wait = throttles.check((("player", entry.user_id), ("ip", client_ip(request))))
    if wait is not None:
        seconds, message = throttles.throttled_detail(wait)
        body = error_body("throttled", message, retry_after=seconds)
        status, body, headers = _drf_answer(
            conf, secure, path, 429, body, ((b"retry-after", b"%d" % seconds),)
        )
        raise _Answer(status, body, headers)


async def _assignment(request, conf, secure, query):
    if query:
        return None
    key = _token_key(request)
    if key is None:
        return None
    entry, if_none_match = cached_token_entry(key), _if_none_match(request)
    if not _in_loop(entry):
        return await _in_db_thread(
            _assignment_job, key, entry, if_none_match, request, conf, secure
        )
    _throttle_drf(entry, request, conf, secure, ASSIGNMENT)
    event_seq = await _seq_reader().get(entry.pk)
    if event_seq is None:
        return None  # the player is gone: Django says what that means
    answer = _ready.answer(entry.pk, event_seq)
    if answer is None:
        answer = await _in_db_thread(_assignment_body, entry.pk)
        _ready.put(entry.pk, (event_seq, *answer))
    return _assignment_answer(entry.pk, event_seq, answer, if_none_match, conf, secure)


def _if_none_match(request: _Request) -> str | None:
    raw = request.headers.get(b"if-none-match")
    return None if raw is None else raw.decode("latin1")


def _events_job(key, entry, after, request, conf, secure):
    if entry is None:
        entry = token_entry(key)
        if entry is None:
            return None
    refused = _events_throttled(entry, request, conf, secure)
    if refused is not None:
        return refused
    if _touch_due(entry):
        from lobby.services import player_touch

        player_touch(entry)
    (event_seq,) = _compiled_query("event_seq", _event_seq_query).rows(player=entry.pk)[0]
    if event_seq > after:
        return _events_page(entry.pk, after, conf, secure)
    return _events_answer([], after, conf, secure)


def _events_throttled(entry, request, conf, secure):
    """The events endpoint's own order: the first throttle that refuses answers, in its words."""
    from lobby.errors import error_body
    from lobby.ip import client_ip

    for scope, ident in (("player", entry.user_id), ("ip", client_ip(request))):
        wait = throttles.check(((scope, ident),))
        if wait is not None:
            seconds = throttles.seconds(wait)
            body = error_body("throttled", "Too many requests; slow down.", retry_after=seconds)
            headers = _json_headers(conf, secure, ((b"retry-after", str(seconds).encode()),))
            return 429, _django_json(body), headers
    return None


def _events_page(player_id, after, conf, secure):
    from lobby.models import Player
    from lobby.selectors import events_after

    events = [e.as_message() for e in events_after(player=Player(pk=player_id), after=after)]
    return _events_answer(events, after, conf, secure)


def _events_answer(events, after, conf, secure):
    last_seq = events[-1]["seq"] if events else after
    return 200, _django_json({"events": events, "last_seq": last_seq}), _json_headers(conf, secure)


async def _events(request, conf, secure, query):
    after = 0
    for name, value in query.items():
        if name == "after" and _DIGITS.match(value):
            after = int(value)
        elif not (name == "wait" and value == "0"):
            return None  # a long-poll, or a parameter to be refused: the full path
    key = _token_key(request)
    if key is None:
        return None
    entry = cached_token_entry(key)
    if not _in_loop(entry):
        return await _in_db_thread(_events_job, key, entry, after, request, conf, secure)
    refused = _events_throttled(entry, request, conf, secure)
    if refused is not None:
        return refused
    event_seq = await _seq_reader().get(entry.pk)
    if event_seq is None:
        return None
    if event_seq > after:
        return await _in_db_thread(_events_page, entry.pk, after, conf, secure)
    return _events_answer([], after, conf, secure)


_PAGE_SIZE_DEFAULT = 20
_PAGE_SIZE_MAX = 100
_FILTER_LIMITS = {"mode": 32, "region": 32, "q": 64}


def _lobbies_job(key, entry, filters, page, page_size, if_none_match, request, conf, secure, url):
    if entry is None or _touch_due(entry):
        entry = _authenticated(key)
        if entry is None:
            return None
    _throttle_drf(entry, request, conf, secure, LOBBIES)
    return _browse_answer(
        _browse_page(filters, page, page_size, conf, url), if_none_match, conf, secure
    )


def _browse_answer(page, if_none_match, conf, secure):
    if page is None:
        return None  # past the end: DRF's "Invalid page." 404, said by the full path
    etag, body = page
    if etags.not_modified(if_none_match, etag):
        return _not_modified(conf, secure, LOBBIES, etag)
    return (
        200,
        body,
        _json_headers(conf, secure, ((b"etag", etag.encode()), *conf.drf_headers[LOBBIES])),
    )


def _browse_page(filters, page, page_size, conf, url: str) -> tuple[str, bytes] | None:
    """The page's tag and rendered body (the same for every caller), or None past the end."""
    flags = tuple(bool(value) for value in filters.values())
    name = f"lobbies:{flags}:{page}:{page_size}"
    if name in _compiled or len(_compiled) < 256:
        query = _compiled_query(name, lambda: _browse_query(flags, page, page_size))
    else:  # an unusual page: compiled for this request only
        query = _browse_query(flags, page, page_size)
    rows = query.rows(**{key: value for key, value in filters.items() if value})
    if not rows and page > 1:
        return None
    count = rows[0][-1] if rows else 0
    # The tag from the same rows as the body (lobby.etags): one statement, one snapshot.
    etag = etags.lobby_list_etag(url=url, count=count, page=[(row[0], row[-2]) for row in rows])
    pages = max(1, -(-count // page_size))
    results = [
        {
            "id": str(pk), "name": name, "mode": mode, "region": region,
            "member_count": member_count, "max_players": max_players, "host": host,
            "metadata": metadata, "created_at": conf.datetime.to_representation(created_at),
        }
        for pk, name, mode, region, member_count, max_players, host, metadata, created_at, _, _
        in rows
    ]  # fmt: skip
    next_url = replace_query_param(url, "page", page + 1) if page < pages else None
    previous = None
    if page > 1:
        previous = (
            remove_query_param(url, "page")
            if page == 2
            else replace_query_param(url, "page", page - 1)
        )
    data = {"count": count, "next": next_url, "previous": previous, "results": results}
    return etag, conf.renderer.render(data)


class _Shared:
    """Identical reads, made once for every request that asked while the last one was in flight.

    A request never gets a read that started before it arrived (it waits for the next), so it
    sees every change committed before it was made, as it would alone. Players browsing the same
    page at once share one query and one rendering. One per event loop (tests run several).
    """

    def __init__(self):
        self.waiting: dict[tuple, list[asyncio.Future]] = {}
        self.running: set[tuple] = set()
        self.tasks: set[asyncio.Task] = set()

    async def get(self, key: tuple, fn, *args):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.setdefault(key, []).append(future)
        if key not in self.running:
            self.running.add(key)
            task = loop.create_task(self._run(key, fn, args))
            self.tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _run(self, key, fn, args) -> None:
        try:
            while self.waiting.get(key):
                futures = self.waiting.pop(key)
                try:
                    result, failure = await _in_db_thread(fn, *args), None
                except Exception as exc:  # each waiting request fails over to Django
                    result, failure = None, exc
                for future in futures:
                    if future.done():
                        continue
                    if failure is not None:
                        future.set_exception(failure)
                    else:
                        future.set_result(result)
        finally:
            self.running.discard(key)


_shared_reads: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _shared() -> _Shared:
    return _per_loop(_shared_reads, _Shared)


_FILTER_MARKS = {"mode": "\x01mode\x01", "region": "\x01region\x01", "q": "\x01q\x01"}


def _browse_query(flags, page, page_size) -> _Compiled:
    """One page of `lobby.selectors.lobby_list`, with the total count of the list on each row."""
    from django.db.models import Count, Window

    from lobby.selectors import lobby_list

    marks = {
        name: mark for (name, mark), on in zip(_FILTER_MARKS.items(), flags, strict=True) if on
    }
    queryset = (
        lobby_list(**marks)
        .annotate(total=Window(Count("pk")))
        .values_list(
            "id", "name", "mode", "region", "member_count", "max_players", "host__display_name",
            "metadata", "created_at", "version", "total",
        )[(page - 1) * page_size : page * page_size]
    )  # fmt: skip
    return _Compiled(queryset, marks)


async def _lobbies(request, conf, secure, query):
    filters = {"mode": "", "region": "", "q": ""}
    page, page_size = 1, _PAGE_SIZE_DEFAULT
    for name, value in query.items():
        if name in filters:
            value = value.strip()
            if len(value) > _FILTER_LIMITS[name] or not value.isprintable():
                return None
            filters[name] = value
        elif name == "page" and _DIGITS.match(value) and int(value) >= 1:
            page = int(value)
        elif name == "page_size" and _DIGITS.match(value) and int(value) >= 1:
            page_size = min(int(value), _PAGE_SIZE_MAX) or _PAGE_SIZE_DEFAULT
        else:
            return None
    key = _token_key(request)
    if key is None:
        return None
    host = request.headers[b"host"].decode("latin1")
    raw_query = request.scope.get("query_string", b"").decode()

    scheme = "https" if secure else "http"
    suffix = "?" + iri_to_uri(raw_query) if raw_query else ""
    url = f"{scheme}://{host}{iri_to_uri(request.scope['path'])}{suffix}"
    entry, if_none_match = cached_token_entry(key), _if_none_match(request)
    if not _in_loop(entry):
        return await _in_db_thread(
            _lobbies_job, key, entry, filters, page, page_size, if_none_match, request, conf,
            secure, url,
        )  # fmt: skip
    _throttle_drf(entry, request, conf, secure, LOBBIES)
    shared_key = ("browse", *filters.values(), page, page_size, url)
    answer = await _shared().get(shared_key, _browse_page, filters, page, page_size, conf, url)
    return _browse_answer(answer, if_none_match, conf, secure)


_LOBBY_COLUMNS = (
    "id", "name", "state", "version", "visibility", "max_players", "mode", "region", "metadata",
    "joinable_after_start", "host_id", "join_code", "failure_reason",
)  # fmt: skip
_LOBBY_MARK = uuid.UUID("00000000-0000-4000-8000-0000fa57fa57")


def _prepped_lobby_id(lobby_id) -> object:
    from lobby.models import Lobby

    return Lobby._meta.pk.get_db_prep_value(lobby_id, connection)


def _lobby_query() -> _Compiled:
    """The lobby and its active members (as `lobby.selectors.lobby_members` orders them), in one
    statement: one row per member, or one row without a member."""
    from django.db.models import FilteredRelation, Q

    from lobby.models import Lobby, Membership

    queryset = (
        Lobby.objects.filter(pk=_LOBBY_MARK)
        .annotate(
            active=FilteredRelation(
                "memberships", condition=Q(memberships__state=Membership.State.ACTIVE)
            )
        )
        .values_list(
            *_LOBBY_COLUMNS, "active__player_id", "active__player__display_name", "active__ready"
        )
        .order_by(*(f"active__{field}" for field in Membership._meta.ordering))
    )
    return _Compiled(queryset, {"lobby": _prepped_lobby_id(_LOBBY_MARK)})


def _lobby_state_query() -> _Compiled:
    """The lobby's version, visibility and active members' ids (one row per member): all a poll
    of an unchanged lobby needs, whoever asks."""
    from django.db.models import FilteredRelation, Q

    from lobby.models import Lobby, Membership

    queryset = (
        Lobby.objects.filter(pk=_LOBBY_MARK)
        .annotate(
            active=FilteredRelation(
                "memberships", condition=Q(memberships__state=Membership.State.ACTIVE)
            )
        )
        .values_list("version", "visibility", "active__player_id")
        .order_by()
    )
    return _Compiled(queryset, {"lobby": _prepped_lobby_id(_LOBBY_MARK)})


def _lobby_state(lobby_id: str) -> tuple[int, str, frozenset] | None:
    rows = _compiled_query("lobby_state", _lobby_state_query).rows(
        lobby=_prepped_lobby_id(lobby_id)
    )
    if not rows:
        return None
    return rows[0][0], rows[0][1], frozenset(row[2] for row in rows if row[2] is not None)


# Rendered lobby details by (lobby, version, seen by a member): a version is one state of the
# lobby, members included, so its detail never changes (lobby.etags). Filed under the version read
# in the same statement as the body.
_kept_lobbies = _Kept(10_000)


def _lobby_job(key, entry, lobby_id, if_none_match, request, conf, secure):
    if entry is None or _touch_due(entry):
        entry = _authenticated(key)
        if entry is None:
            return None
    _throttle_drf(entry, request, conf, secure, LOBBY)
    state = _lobby_state(lobby_id)
    answer = _lobby_known(state, entry.pk, lobby_id, if_none_match, conf, secure)
    return answer if answer is not None else _lobby_rendered(entry.pk, lobby_id, conf, secure)


def _lobby_not_found(conf, secure):
    # lobby.selectors.lobby_get_visible: a private lobby is not revealed to outsiders.
    from lobby.errors import error_body

    body = error_body("lobby_not_found", "There is no such lobby.")
    return _drf_answer(conf, secure, LOBBY, 404, body)


def _lobby_known(state, player_id, lobby_id, if_none_match, conf, secure):
    """The answer from the lobby's state alone (404, 304, or the body kept for this version),
    or None when the body must be read and rendered."""
    from lobby.models import Lobby

    if state is None:
        return _lobby_not_found(conf, secure)
    version, visibility, member_ids = state
    is_member = player_id in member_ids
    if visibility == Lobby.Visibility.PRIVATE and not is_member:
        return _lobby_not_found(conf, secure)
    etag = etags.lobby_etag(lobby_id=lobby_id, version=version, player_id=player_id)
    if etags.not_modified(if_none_match, etag):
        return _not_modified(conf, secure, LOBBY, etag)
    body = _kept_lobbies.get((lobby_id, version, is_member))
    if body is None:
        return None
    headers = _json_headers(conf, secure, ((b"etag", etag.encode()), *conf.drf_headers[LOBBY]))
    return 200, body, headers


def _lobby_rendered(player_id, lobby_id, conf, secure):
    from lobby.models import Lobby, Membership, Player
    from lobby.selectors import lobby_snapshot

    rows = _compiled_query("lobby", _lobby_query).rows(lobby=_prepped_lobby_id(lobby_id))
    n = len(_LOBBY_COLUMNS)
    lobby = Lobby(**dict(zip(_LOBBY_COLUMNS, rows[0][:n], strict=True))) if rows else None
    members = [
        Membership(
            lobby=lobby, player_id=member_id, ready=ready,
            player=Player(pk=member_id, display_name=display_name),
        )
        for *_, member_id, display_name, ready in rows
        if member_id is not None
    ]  # fmt: skip
    is_member = any(member.player_id == player_id for member in members)
    if lobby is None or (lobby.visibility == Lobby.Visibility.PRIVATE and not is_member):
        return _lobby_not_found(conf, secure)
    data = lobby_snapshot(lobby, members)
    if not is_member:
        data["join_code"] = None  # lobby.apis._detail: the code is for members only
    # The tag and the kept copy go by the version read with this body (it may be newer than
    # the state read before: a change landed in between).
    etag = etags.lobby_etag(lobby_id=lobby_id, version=lobby.version, player_id=player_id)
    answer = _drf_answer(conf, secure, LOBBY, 200, data, ((b"etag", etag.encode()),))
    _kept_lobbies.put((lobby_id, lobby.version, is_member), answer[1])
    return answer


async def _lobby(request, conf, secure, query):
    match = _LOBBY_PATH.match(request.scope["path"])
    if query or match is None:
        return None
    key = _token_key(request)
    if key is None:
        return None
    lobby_id, entry, if_none_match = (
        match.group(1),
        cached_token_entry(key),
        _if_none_match(request),
    )
    if not _in_loop(entry):
        return await _in_db_thread(
            _lobby_job, key, entry, lobby_id, if_none_match, request, conf, secure
        )
    _throttle_drf(entry, request, conf, secure, LOBBY)
    # The lobby's members poll it together: one read of its state serves all of them.
    state = await _shared().get(("lobby", lobby_id), _lobby_state, lobby_id)
    answer = _lobby_known(state, entry.pk, lobby_id, if_none_match, conf, secure)
    if answer is not None:
        return answer
    return await _in_db_thread(_lobby_rendered, entry.pk, lobby_id, conf, secure)


_ROUTES = {HEALTHZ: _healthz, ASSIGNMENT: _assignment, EVENTS: _events, LOBBIES: _lobbies}
_LOBBY_PREFIX = LOBBIES + "/"


def _token_key(request: _Request) -> str | None:
    header = request.headers.get(b"authorization")
    if header is None:
        return None
    is_token, key = split_authorization(header.decode("latin1"))
    # DRF refuses a key with a space in it with its own message: the full path answers that.
    return key if is_token and key and " " not in key else None


# --- The ASGI wrapper ------------------------------------------------------------------------


class _FailureLog:
    """One WARNING line at most every 10 s when the lean path fails and hands over to Django."""

    def __init__(self):
        self.last = 0.0
        self.count = 0
        self.lock = threading.Lock()

    def note(self, path: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.count += 1
            if now - self.last < 10:
                return
            count, self.count, self.last = self.count, 0, now
        logger.warning("lean path failed %d time(s), answered by Django; last on %s", count, path,
                       exc_info=True)  # fmt: skip


_failures = _FailureLog()


class LeanHttp:
    """ASGI middleware: answers the polled paths itself when it can, else passes to `app`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        handler = None
        if scope["type"] == "http":
            path = scope["path"]
            handler = _ROUTES.get(path)
            if handler is None and path.startswith(_LOBBY_PREFIX) and len(path) == 52:
                handler = _lobby  # /api/v1/lobbies/<36-character id>
        if handler is not None and scope["method"] == "GET":
            answer = await self._answer(handler, scope)
            if answer is not None:
                status, body, headers = answer
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _answer(self, handler, scope):
        conf = setup()
        if not conf.enabled:
            return None
        headers = dict(scope["headers"])
        if (
            headers.get(b"accept", b"") not in _JSON_ACCEPTS
            or headers.get(b"content-length", b"0") != b"0"
            or b"transfer-encoding" in headers
            or not conf.host_ok(headers.get(b"host", b""))
        ):
            return None
        request = _Request(scope, headers)
        secure = _is_secure(request, conf)
        if conf.ssl_redirect and not secure:
            return None  # SecurityMiddleware redirects
        raw_query = scope.get("query_string", b"")
        query = {}
        if raw_query:
            parsed = QueryDict(raw_query)
            if any(len(values) != 1 for _, values in parsed.lists()):
                return None
            query = parsed.dict()
        try:
            return await handler(request, conf, secure, query)
        except _Answer as answer:
            return answer.status, answer.body, answer.headers
        except Exception:
            _failures.note(scope["path"])
            return None
