"""The lean poll paths (lobby/fastpath.py) answer exactly what the full Django path answers.

Each request is sent, as ASGI, to the project's HTTP app with the lean path in front and to the
same app without it; status, body and every header must match, and the lean path must really
have answered (not handed the request to Django) wherever it claims the case.
"""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction

from config.asgi import django_asgi_app
from lobby import fastpath, services, throttles
from lobby.authentication import forget_all_tokens
from lobby.models import Lobby
from relays import signals
from relays.models import RelaySession

pytestmark = pytest.mark.django_db(transaction=True)

ASSIGNMENT = "/api/v1/players/me/assignment"
EVENTS = "/api/v1/players/me/events"
LOBBIES = "/api/v1/lobbies"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    # Relay tasks run after commit here (transactional tests): no worker, no Edgegap.
    monkeypatch.setattr("relays.services._after_commit", lambda *args, **kwargs: None)
    fastpath.forget_setup()
    forget_all_tokens()
    yield
    fastpath.forget_setup()
    forget_all_tokens()


class _Recorder:
    """Django's app, noting each request it had to answer."""

    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        self.calls.append(scope["path"])
        await django_asgi_app(scope, receive, send)


def _call(app, path, *, query="", headers=()):
    async def run():
        sent, received = [], []

        async def receive():
            if received:  # the client stays: Django listens for a disconnect until it answers
                await asyncio.Event().wait()
            received.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": query.encode(), "client": ("127.0.0.1", 40000),
            "server": ("localhost", 8000), "headers": [(b"host", b"localhost"), *headers],
        }  # fmt: skip
        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        # Header names are case-insensitive: compared lower-cased.
        answer_headers = sorted((name.lower(), value) for name, value in start["headers"])
        return start["status"], answer_headers, body

    return async_to_sync(run)()


def both(path, key=None, *, query="", headers=(), lean_answers=True):
    """The lean and the full answer to one request, checked equal; returns (status, body)."""
    auth = [(b"authorization", f"Token {key}".encode())] if key else []
    recorder = _Recorder()
    lean = _call(fastpath.LeanHttp(recorder), path, query=query, headers=[*auth, *headers])
    assert recorder.calls == ([] if lean_answers else [path])
    throttles.reset()  # the full path starts from the same counts
    full = _call(django_asgi_app, path, query=query, headers=[*auth, *headers])
    assert lean == full
    return lean[0], json.loads(lean[2])


def _guest(name):
    return services.player_create_guest(display_name=name)


def _started_lobby():
    host, host_key = _guest("host")
    guest, guest_key = _guest("guest")
    lobby = services.lobby_create(player=host, ip="203.0.113.1", name="room", max_players=4)
    services.lobby_join(lobby_id=lobby.pk, player=guest, ip="198.51.100.2")
    for player in (host, guest):
        services.lobby_set_ready(lobby_id=lobby.pk, player=player, ready=True, ip="203.0.113.1")
    lobby = services.lobby_start(lobby_id=lobby.pk, player=host)
    return lobby, host_key, guest_key


def _relay_ready(lobby):
    session = RelaySession.objects.get(lobby=lobby)
    with transaction.atomic():
        RelaySession.objects.filter(pk=session.pk).update(
            status=RelaySession.Status.READY, session_id="edge-1", session_token=3500589645,
            relay_host="relay.example.test", relay_ip="198.51.100.200", server_port=32000,
            client_port=32001,
        )  # fmt: skip
        for n, seat in enumerate(session.seats.order_by("ordinal")):
            seat.user_token = 21986334 + n
            seat.save(update_fields=["user_token"])
        session.refresh_from_db()
        signals.session_ready.send(sender=RelaySession, session=session)


def test_healthz_is_the_views_answer():
    assert both("/healthz") == (200, {"status": "ok"})


def test_assignment_ready_for_host_and_client():
    lobby, host_key, guest_key = _started_lobby()
    _relay_ready(lobby)
    status, host = both(ASSIGNMENT, host_key)
    assert status == 200
    assert (host["status"], host["role"], host["relay"]["port"]) == ("ready", "server", 32000)
    assert host["user_authorization_token"] == 21986334
    status, guest = both(ASSIGNMENT, guest_key)
    assert (guest["role"], guest["relay"]["port"], guest["user_authorization_token"]) == (
        "client",
        32001,
        21986335,
    )


def test_assignment_pending_while_the_relay_is_allocated():
    _, host_key, _ = _started_lobby()
    status, body = both(ASSIGNMENT, host_key)
    assert (status, body["status"], body["relay"]) == (200, "pending", None)


def test_assignment_failed_carries_the_reason():
    lobby, host_key, _ = _started_lobby()
    Lobby.objects.filter(pk=lobby.pk).update(
        state=Lobby.State.FAILED, failure_reason="no relay could be had"
    )
    status, body = both(ASSIGNMENT, host_key)
    assert (status, body["status"], body["error"]) == (200, "failed", "no relay could be had")


def test_no_lobby_is_404_no_assignment():
    _, key = _guest("alone")
    status, body = both(ASSIGNMENT, key)
    assert (status, body["error"]["code"]) == (404, "no_assignment")


def test_bad_token_is_left_to_django():
    status, body = both(ASSIGNMENT, "nope", lean_answers=False)
    assert (status, body["error"]["code"]) == (401, "authentication_failed")


def test_revoked_token_is_refused_at_once_after_being_cached():
    from rest_framework.authtoken.models import Token

    _, key = _guest("leaver")
    assert both(ASSIGNMENT, key)[0] == 404  # the lean path has cached the token now
    Token.objects.filter(key=key).delete()
    status, body = both(ASSIGNMENT, key, lean_answers=False)
    assert (status, body["error"]["code"]) == (401, "authentication_failed")


def test_deactivated_user_is_refused_at_once():
    player, key = _guest("banned")
    assert both(ASSIGNMENT, key)[0] == 404
    player.user.is_active = False
    player.user.save()
    assert both(ASSIGNMENT, key, lean_answers=False)[0] == 401


def test_throttled_answers_match(throttle_rates, monkeypatch):
    throttle_rates(player="2/min")
    monkeypatch.setattr(throttles, "_clock", lambda: 1_000_020.0)  # the same wait both times
    _, key = _guest("eager")
    owner = _guest("owner")[0]
    lobby = services.lobby_create(player=owner, ip="203.0.113.1", name="room", max_players=4)
    detail = f"{LOBBIES}/{lobby.pk}"
    for path, query in ((ASSIGNMENT, ""), (EVENTS, "after=0"), (LOBBIES, ""), (detail, "")):
        recorder = _Recorder()
        lean_app = fastpath.LeanHttp(recorder)
        auth = [(b"authorization", f"Token {key}".encode())]
        lean = [_call(lean_app, path, query=query, headers=auth) for _ in range(3)]
        assert recorder.calls == []
        throttles.reset()
        full = [_call(django_asgi_app, path, query=query, headers=auth) for _ in range(3)]
        throttles.reset()
        assert lean == full
        status, headers, body = lean[2]
        assert status == 429
        assert (
            dict(headers)[b"retry-after"] == str(json.loads(body)["error"]["retry_after"]).encode()
        )


def test_events_nothing_new_and_a_page():
    _, host_key, _ = _started_lobby()
    status, page = both(EVENTS, host_key, query="after=0")
    assert status == 200 and page["events"]
    last = page["last_seq"]
    assert both(EVENTS, host_key, query=f"after={last}&wait=0") == (
        200,
        {"events": [], "last_seq": last},
    )


def test_events_long_poll_and_bad_parameters_are_left_to_django():
    _, key = _guest("poller")
    assert both(EVENTS, key, query="after=x", lean_answers=False)[0] == 400
    assert both(EVENTS, key, query="after=0&wait=31", lean_answers=False)[0] == 400


def test_lower_case_token_keyword_works_on_every_door():
    _, key = _guest("lower")
    headers = [(b"authorization", f"token {key}".encode())]
    assert both(ASSIGNMENT, headers=headers)[0] == 404
    assert both(EVENTS, headers=headers, query="after=0")[0] == 200
    bad = [(b"authorization", b"token nope")]
    status, body = both(EVENTS, headers=bad, query="after=0", lean_answers=False)
    assert (status, body["error"]["code"]) == (401, "authentication_failed")


@pytest.mark.asyncio
async def test_lower_case_token_keyword_opens_the_socket():
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    _, key = await sync_to_async(_guest)("socket")
    communicator = WebsocketCommunicator(
        application, "/ws/v1/events", headers=[(b"authorization", f"token {key}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


def test_browse_pages_and_filters():
    for n in range(23):
        host, _ = _guest(f"host {n}")
        services.lobby_create(
            player=host, ip="203.0.113.1", name=f"room {n}", max_players=4,
            mode="duel" if n % 2 else "ffa", region="eu", metadata={"map": "harbour", "n": n},
        )  # fmt: skip
    _, key = _guest("browser")
    status, first = both(LOBBIES, key)
    assert (status, first["count"], len(first["results"])) == (200, 23, 20)
    assert first["next"] == "http://localhost/api/v1/lobbies?page=2"
    status, second = both(LOBBIES, key, query="page=2")
    assert (len(second["results"]), second["previous"]) == (3, "http://localhost/api/v1/lobbies")
    status, duels = both(LOBBIES, key, query="mode=duel&q=room+1&page_size=5")
    assert duels["count"] == 6 and {item["mode"] for item in duels["results"]} == {"duel"}
    assert both(LOBBIES, key, query="page=9", lean_answers=False)[0] == 404


def test_html_only_clients_and_cookies_are_left_to_django():
    _, key = _guest("html")
    both(ASSIGNMENT, key, headers=[(b"accept", b"text/html")], lean_answers=False)
    both(ASSIGNMENT, headers=[(b"cookie", b"sessionid=nope")], lean_answers=False)


def test_redis_down_throttles_still_hold_and_nothing_fails(settings, throttle_rates):
    # Nothing listens on port 9: every sync fails, each process counts alone.
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    throttle_rates(player="3/min")
    _, key = _guest("offline")
    auth = [(b"authorization", f"Token {key}".encode())]
    app = fastpath.LeanHttp(django_asgi_app)
    statuses = [_call(app, ASSIGNMENT, headers=auth)[0] for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    assert throttles.counters().sync() is False
    assert _call(django_asgi_app, LOBBIES, headers=auth)[0] == 429  # the full path too, no 500


def test_counts_are_shared_through_redis_between_processes(settings):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL")
    first, second = throttles.Counters(settings.REDIS_URL), throttles.Counters(settings.REDIS_URL)
    first.reset()
    now = 1_000_000.0
    assert [first.hit("player:x", 3, 60, now) for _ in range(2)] == [None, None]
    assert first.sync()
    assert second.hit("player:x", 3, 60, now) is None
    assert second.sync()
    assert second.hit("player:x", 3, 60, now) is not None
    first.reset()


def test_sliding_window_wait():
    counters = throttles.Counters(None)
    now = 600.0  # the start of a minute window
    assert all(counters.hit("k", 2, 60, now) is None for _ in range(2))
    wait = counters.hit("k", 2, 60, now + 30)
    assert 30 < wait <= 60.01  # until the window ends and its weight fades enough
    assert counters.hit("k", 2, 60, now + 30 + wait + 0.01) is None


def test_lean_path_is_on_with_the_projects_settings():
    # A new middleware turns the lean path off until it is taught what that middleware does.
    assert fastpath.setup().enabled


def test_loop_is_not_blocked_by_the_lean_database_thread():
    # The lean path hops to its thread and back: the event loop serves others meanwhile.
    async def run():
        return await asyncio.gather(*(fastpath._in_db_thread(sum, [1, 2]) for _ in range(10)))

    assert async_to_sync(run)() == [3] * 10


# --- The lobby detail ------------------------------------------------------------------------


def _open_lobby(visibility="public"):
    host, host_key = _guest("host")
    lobby = services.lobby_create(
        player=host, ip="203.0.113.1", name="room", max_players=4, visibility=visibility,
        mode="duel", region="eu", metadata={"map": "harbour", "ranked": True},
    )  # fmt: skip
    guest, guest_key = _guest("guest")
    services.lobby_join(lobby_id=lobby.pk, player=guest, ip="198.51.100.2", by_code=True)
    services.lobby_set_ready(lobby_id=lobby.pk, player=guest, ready=True, ip="198.51.100.2")
    return lobby, host_key, guest_key


def test_detail_for_a_member_shows_the_join_code_and_the_members_in_order():
    lobby, host_key, _ = _open_lobby()
    status, body = both(f"{LOBBIES}/{lobby.pk}", host_key)
    assert (status, body["join_code"], body["member_count"]) == (200, lobby.join_code, 2)
    assert [(m["display_name"], m["ready"], m["is_host"]) for m in body["members"]] == [
        ("host", False, True),
        ("guest", True, False),
    ]
    assert body["metadata"] == {"map": "harbour", "ranked": True}
    # The lean path keeps the rendered detail per version: a change is still seen at once.
    services.lobby_set_ready(
        lobby_id=lobby.pk, player=_player(host_key), ready=True, ip="192.0.2.4"
    )
    status, body = both(f"{LOBBIES}/{lobby.pk}", host_key)
    assert [m["ready"] for m in body["members"]] == [True, True]


def test_detail_of_a_public_lobby_for_an_outsider_hides_the_join_code():
    lobby, _, _ = _open_lobby()
    _, outsider_key = _guest("outsider")
    status, body = both(f"{LOBBIES}/{lobby.pk}", outsider_key)
    assert (status, body["join_code"], body["id"]) == (200, None, str(lobby.pk))


def test_detail_of_a_private_lobby_is_404_to_outsiders_and_shown_to_members():
    lobby, _, guest_key = _open_lobby(visibility="private")
    _, outsider_key = _guest("outsider")
    status, body = both(f"{LOBBIES}/{lobby.pk}", outsider_key)
    assert (status, body["error"]["code"]) == (404, "lobby_not_found")
    status, body = both(f"{LOBBIES}/{lobby.pk}", guest_key)
    assert (status, body["join_code"]) == (200, lobby.join_code)


def test_detail_of_a_closed_lobby_has_no_members():
    lobby, host_key, _ = _open_lobby()
    services.lobby_end(lobby_id=lobby.pk, player=Lobby.objects.get(pk=lobby.pk).host)
    status, body = both(f"{LOBBIES}/{lobby.pk}", host_key)
    assert (status, body["state"], body["members"], body["join_code"]) == (200, "closed", [], None)


def test_detail_of_an_unknown_lobby_is_404():
    _, key = _guest("seeker")
    status, body = both(f"{LOBBIES}/6a1f2a5e-0000-4000-8000-000000000000", key)
    assert (status, body["error"]["code"]) == (404, "lobby_not_found")


def test_detail_with_a_malformed_id_or_a_bad_token_is_left_to_django():
    lobby, key, _ = _open_lobby()
    upper = f"{LOBBIES}/{str(lobby.pk).upper()}"
    assert both(upper, key, lean_answers=False)[0] == 404
    not_an_id = f"{LOBBIES}/not-a-uuid-at-all-but-36-characters-"
    assert both(not_an_id, key, lean_answers=False)[0] == 404
    status, body = both(f"{LOBBIES}/{lobby.pk}", "nope", lean_answers=False)
    assert (status, body["error"]["code"]) == (401, "authentication_failed")


def test_detail_refuses_a_revoked_token_at_once():
    from rest_framework.authtoken.models import Token

    lobby, key, _ = _open_lobby()
    assert both(f"{LOBBIES}/{lobby.pk}", key)[0] == 200
    Token.objects.filter(key=key).delete()
    assert both(f"{LOBBIES}/{lobby.pk}", key, lean_answers=False)[0] == 401


# --- ETag / If-None-Match ----------------------------------------------------------------------


def _etag_of(path, key, query=""):
    auth = [(b"authorization", f"Token {key}".encode())]
    status, headers, _ = _call(django_asgi_app, path, query=query, headers=auth)
    assert status == 200
    return dict(headers)[b"etag"].decode()


def _conditional(path, key, etag, query=""):
    """Both doors asked with If-None-Match; returns the (equal) status and the lean headers."""
    auth = [(b"authorization", f"Token {key}".encode()), (b"if-none-match", etag.encode())]
    recorder = _Recorder()
    lean = _call(fastpath.LeanHttp(recorder), path, query=query, headers=auth)
    assert recorder.calls == []
    throttles.reset()
    full = _call(django_asgi_app, path, query=query, headers=auth)
    assert lean == full
    return lean[0], dict(lean[1]), lean[2]


def test_unchanged_lobby_is_304_until_it_changes():
    lobby, host_key, guest_key = _open_lobby()
    path = f"{LOBBIES}/{lobby.pk}"
    etag = _etag_of(path, host_key)
    status, headers, body = _conditional(path, host_key, etag)
    assert (status, headers[b"etag"].decode(), body) == (304, etag, b"")
    assert b"content-type" not in headers
    # Weak and listed forms match too (RFC 9110's weak comparison for GET).
    assert _conditional(path, host_key, f'"other", W/{etag}')[0] == 304
    # Another caller has its own tag: a member and an outsider see different join codes.
    _, outsider_key = _guest("outsider")
    assert _conditional(path, outsider_key, etag)[0] == 200
    guest = _player(guest_key)
    services.lobby_set_ready(lobby_id=lobby.pk, player=guest, ready=False, ip="192.0.2.4")
    status, headers, body = _conditional(path, host_key, etag)
    assert status == 200 and headers[b"etag"].decode() != etag
    assert json.loads(body)["members"][1]["ready"] is False


def test_unchanged_assignment_is_304_until_it_changes():
    lobby, host_key, _ = _started_lobby()
    etag = _etag_of(ASSIGNMENT, host_key)
    assert _conditional(ASSIGNMENT, host_key, etag)[0] == 304
    _relay_ready(lobby)
    status, headers, body = _conditional(ASSIGNMENT, host_key, etag)
    assert (status, json.loads(body)["status"]) == (200, "ready")
    assert _conditional(ASSIGNMENT, host_key, headers[b"etag"].decode())[0] == 304


def test_no_assignment_has_no_etag():
    _, key = _guest("alone")
    auth = [(b"authorization", f"Token {key}".encode())]
    status, headers, _ = _call(fastpath.LeanHttp(django_asgi_app), ASSIGNMENT, headers=auth)
    assert status == 404 and b"etag" not in dict(headers)


def test_unchanged_browse_page_is_304_until_a_lobby_on_it_changes():
    lobby, _, guest_key = _open_lobby()
    _, key = _guest("browser")
    etag = _etag_of(LOBBIES, key)
    assert _conditional(LOBBIES, key, etag)[0] == 304
    # The tag is the page's: another page, or the same page on another host, differs.
    assert _conditional(LOBBIES, key, etag, query="mode=duel")[0] == 200
    guest = _player(guest_key)
    services.lobby_set_ready(lobby_id=lobby.pk, player=guest, ready=False, ip="192.0.2.4")
    assert _conditional(LOBBIES, key, etag)[0] == 200  # its version moved
    etag = _etag_of(LOBBIES, key)
    newcomer = _guest("newcomer")[0]
    services.lobby_create(player=newcomer, ip="203.0.113.1", name="new room", max_players=4)
    assert _conditional(LOBBIES, key, etag)[0] == 200


def test_kept_assignment_follows_every_change():
    # The lean path keeps each player's answer while its event_seq stands still: every step of
    # a match must still be seen, on the lean path alone, as Django sees it.
    lobby, host_key, guest_key = _started_lobby()
    assert both(ASSIGNMENT, guest_key)[1]["status"] == "pending"
    assert both(ASSIGNMENT, guest_key)[1]["status"] == "pending"  # kept
    _relay_ready(lobby)
    assert both(ASSIGNMENT, guest_key)[1]["status"] == "ready"
    services.lobby_leave(lobby_id=lobby.pk, player=_player(guest_key))
    assert both(ASSIGNMENT, guest_key)[0] == 404
    assert both(ASSIGNMENT, host_key)[1]["status"] == "ready"
    services.lobby_end(lobby_id=lobby.pk, player=_player(host_key))
    assert both(ASSIGNMENT, host_key)[0] == 404


def _player(key):
    from rest_framework.authtoken.models import Token

    return Token.objects.select_related("user__player").get(key=key).user.player


def test_concurrent_polls_of_many_players_each_get_their_own_answer(monkeypatch):
    # Polls that arrive together share one read of their players' event_seq (fastpath._SeqReader):
    # each must still get its own assignment and its own events.
    lobby, host_key, guest_key = _started_lobby()
    _relay_ready(lobby)
    alone, alone_key = _guest("alone")
    services.lobby_create(player=alone, ip="203.0.113.1", name="open room", max_players=4)
    keys = [host_key, guest_key, alone_key]
    app = fastpath.LeanHttp(_Recorder())
    for key in keys:  # the first poll reads and caches each token
        _call(app, ASSIGNMENT, headers=[(b"authorization", f"Token {key}".encode())])
    reads = []
    real_read = fastpath._read_seqs
    monkeypatch.setattr(fastpath, "_read_seqs", lambda ids: reads.append(ids) or real_read(ids))

    async def poll(path, key, query=""):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "method": "GET", "scheme": "http", "path": path, "raw_path": b"",
            "query_string": query.encode(), "client": ("127.0.0.1", 40000), "root_path": "",
            "headers": [(b"host", b"localhost"), (b"authorization", f"Token {key}".encode())],
        }  # fmt: skip
        await app(scope, receive, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    async def run():
        polls = [poll(ASSIGNMENT, key) for key in keys * 5]
        polls += [poll(EVENTS, key, "after=0&wait=0") for key in keys]
        polls += [poll(LOBBIES, key) for key in keys * 2]
        polls += [poll(f"{LOBBIES}/{lobby.pk}", key) for key in keys * 2]
        return await asyncio.gather(*polls)

    answers = async_to_sync(run)()
    roles = [(status, body.get("role")) for status, body in answers[:3]]
    assert roles == [(200, "server"), (200, "client"), (404, None)]
    assert answers[:3] * 5 == answers[:15]
    host_events, guest_events, alone_events = answers[15:18]
    browse = answers[18:24]
    details = answers[24:]
    # One read of the lobby's state for all; each caller its own view of it.
    codes = [(status, body["join_code"]) for status, body in details]
    assert codes == [(200, lobby.join_code), (200, lobby.join_code), (200, None)] * 2
    assert browse[0][1]["results"][0]["name"] == "open room"
    assert browse == [browse[0]] * len(browse)
    assert host_events[1]["events"] and guest_events[1]["events"]
    assert (
        host_events[1]["last_seq"] != 0 and alone_events[1]["events"][0]["type"] == "lobby.updated"
    )
    assert len(reads) < 18  # polls shared reads
    assert all(len(set(ids)) == len(ids) for ids in reads)


def test_schema_documents_the_conditional_gets():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in ("/api/v1/lobbies", "/api/v1/lobbies/{lobby_id}", "/api/v1/players/me/assignment"):
        operation = paths[path]["get"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers == {"If-None-Match"} and "304" in operation["responses"]
