"""The Edgegap client against `responses` stubs: every quirk of edgegap-relay.md pinned."""

import email.utils
import json
import logging
import pickle
import traceback
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured

from relays.client import (
    EdgegapClient,
    EdgegapError,
    MalformedResponseError,
    PaginationError,
    PermanentError,
    RelayEndpoint,
    SessionNotFound,
    SessionUser,
    TransientError,
    UserMatchError,
    get_client,
    match_users,
)

BASE = "https://edgegap.test"
TOKEN = "s3cr3t-api-key-0123456789"
SESSIONS = f"{BASE}/v1/relays/sessions"
AUTHORIZE = f"{BASE}/v1/relays/sessions:authorize-user"
REVOKE = f"{BASE}/v1/relays/sessions:revoke-user"
HOST_IP, CLIENT_IP, OTHER_IP = "203.0.113.10", "198.51.100.20", "192.0.2.30"


@pytest.fixture
def client():
    with EdgegapClient(BASE, TOKEN, timeout=7.5) as edgegap:
        yield edgegap


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def session_body(session_id="7349356945f1-S", *, ready=False, users=(), **overrides):
    body = {
        "session_id": session_id,
        "authorization_token": 3500589645,
        "status": "READY" if ready else "Initializing",
        "ready": ready,
        "linked": ready,
        "error": None,
        "session_users": [
            {"ip_address": ip, "latitude": 45.5, "longitude": -73.5, "authorization_token": token}
            for ip, token in users
        ],
        "relay": (
            {
                "ip": "149.28.0.1",
                "host": "relay-1.edgegap.test",
                "ports": {
                    "server": {"port": 32000, "protocol": "UDP", "link": "x:32000"},
                    "client": {"port": 32001, "protocol": "UDP", "link": "x:32001"},
                },
            }
            if ready
            else None
        ),
        "webhook_url": None,
    }
    body.update(overrides)
    return body


def list_page(sessions, number, num_pages):
    has_next = number < num_pages
    return {
        "sessions": sessions,
        "total_count": 99,
        "pagination": {
            "number": number,
            "next_page_number": number + 1 if has_next else None,
            "previous_page_number": number - 1 if number > 1 else None,
            "paginator": {"num_pages": num_pages},
            "has_next": has_next,
            "has_previous": number > 1,
        },
    }


def stub_all_six(mocked):
    mocked.post(SESSIONS, json=session_body(users=[(HOST_IP, 1)]))
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc"))
    mocked.get(SESSIONS, json=list_page([session_body("abc")], 1, 1))
    mocked.delete(f"{SESSIONS}/abc", status=204)
    mocked.post(
        AUTHORIZE, json={"session_user": {"ip_address": OTHER_IP, "authorization_token": 5}}
    )
    mocked.post(REVOKE, status=204)


def call_all_six(client):
    client.create_session([HOST_IP])
    client.get_session("abc")
    client.list_sessions()
    client.delete_session("abc")
    client.authorize_user("abc", OTHER_IP)
    client.revoke_user("abc", 5)


# --- Transport: header, timeout, body ------------------------------------------------------


def test_every_call_sends_the_literal_token_authorization_header(client, mocked):
    stub_all_six(mocked)
    call_all_six(client)
    assert len(mocked.calls) == 6
    for call in mocked.calls:
        assert call.request.headers["Authorization"] == f"token {TOKEN}"


def test_every_call_passes_the_configured_timeout(client, mocked):
    stub_all_six(mocked)
    call_all_six(client)
    assert len(mocked.calls) == 6
    assert [call.request.req_kwargs["timeout"] for call in mocked.calls] == [7.5] * 6


def test_a_shared_session_keeps_no_token_in_its_default_headers(mocked):
    shared = requests.Session()
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc"))
    EdgegapClient(BASE, TOKEN, 3, session=shared).get_session("abc")
    assert "Authorization" not in shared.headers
    assert mocked.calls[0].request.headers["Authorization"] == f"token {TOKEN}"


def test_create_session_sends_users_in_request_order_host_first(client, mocked):
    mocked.post(SESSIONS, json=session_body())
    filters = [{"field": "location", "values": ["EU"], "filter_type": "any"}]
    client.create_session(
        [HOST_IP, CLIENT_IP, OTHER_IP], webhook_url="https://lobby.test/hook", filters=filters
    )
    sent = json.loads(mocked.calls[0].request.body)
    assert sent == {
        "users": [{"ip": HOST_IP}, {"ip": CLIENT_IP}, {"ip": OTHER_IP}],
        "webhook_url": "https://lobby.test/hook",
        "filters": filters,
    }
    assert mocked.calls[0].request.headers["Content-Type"] == "application/json"


def test_create_session_omits_unset_webhook_and_filters(client, mocked):
    mocked.post(SESSIONS, json=session_body())
    client.create_session([HOST_IP])
    assert json.loads(mocked.calls[0].request.body) == {"users": [{"ip": HOST_IP}]}


def test_create_session_refuses_a_bare_string_or_no_users(client):
    with pytest.raises(TypeError):
        client.create_session(HOST_IP)
    with pytest.raises(ValueError):
        client.create_session([])
    with pytest.raises(ValueError):
        client.create_session(["not-an-ip"])


def test_session_id_is_quoted_into_the_path(client, mocked):
    mocked.get(f"{SESSIONS}/a%2F..%2Fb%3Fx", json=session_body("a/../b?x"))
    assert client.get_session("a/../b?x").session_id == "a/../b?x"


# --- Parsing sessions ----------------------------------------------------------------------


def test_create_session_reads_an_initializing_session(client, mocked):
    mocked.post(SESSIONS, json=session_body(users=[(HOST_IP, 21986334)]))
    session = client.create_session([HOST_IP])
    assert session.session_id == "7349356945f1-S"
    assert session.status == "Initializing"
    assert session.ready is False
    assert session.linked is False
    assert session.relay is None
    assert session.error is None
    assert session.failed is False
    assert session.users == (SessionUser(HOST_IP, 21986334, 45.5, -73.5),)


def test_get_session_reads_the_relay_endpoint_of_a_ready_session(client, mocked):
    mocked.get(
        f"{SESSIONS}/abc",
        json=session_body("abc", ready=True, webhook_url="https://lobby.test/hook"),
    )
    session = client.get_session("abc")
    assert session.ready is True
    assert session.linked is True
    assert session.relay == RelayEndpoint(
        ip="149.28.0.1",
        host="relay-1.edgegap.test",
        server_port=32000,
        client_port=32001,
        protocol="UDP",
    )
    assert session.webhook_url == "https://lobby.test/hook"


@pytest.mark.parametrize("token", [3500589645, 4294967295, 2**31, "3500589645"])
def test_tokens_above_2_31_are_read_as_python_ints(client, mocked, token):
    mocked.get(
        f"{SESSIONS}/abc",
        json=session_body("abc", authorization_token=token, users=[(HOST_IP, token)]),
    )
    session = client.get_session("abc")
    assert session.authorization_token == int(token)
    assert isinstance(session.authorization_token, int)
    assert session.users[0].authorization_token == int(token)
    assert type(session.users[0].authorization_token) is int


def test_a_null_session_token_reads_as_none(client, mocked):
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc", authorization_token=None))
    assert client.get_session("abc").authorization_token is None


@pytest.mark.parametrize("error", ["", "   ", None])
def test_blank_error_reads_as_none(client, mocked, error):
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc", error=error))
    session = client.get_session("abc")
    assert session.error is None
    assert not session.failed


def test_non_empty_error_marks_the_session_failed(client, mocked):
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc", error=" no relay available "))
    session = client.get_session("abc")
    assert session.error == "no relay available"
    assert session.failed


def test_an_incomplete_relay_on_a_session_not_yet_ready_reads_as_none(client, mocked):
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc", relay={"ip": "149.28.0.1"}))
    assert client.get_session("abc").relay is None


@pytest.mark.parametrize(
    "body",
    [
        "<html>502 Bad Gateway</html>",
        "",
        json.dumps([1, 2]),
        json.dumps({"status": "READY"}),
        json.dumps(session_body(ready="true")),
        json.dumps(session_body(session_id=None)),
        json.dumps(session_body(session_users={"ip_address": HOST_IP})),
        json.dumps(session_body(session_users=[{"ip_address": HOST_IP}])),
        json.dumps(session_body(users=[(HOST_IP, -1)])),
        json.dumps(session_body(users=[(HOST_IP, 2**32)])),
        json.dumps(session_body(users=[(HOST_IP, True)])),
        json.dumps(session_body(users=[(HOST_IP, "12ab")])),
        json.dumps(session_body(authorization_token=[1])),
        json.dumps(session_body(ready=True, relay=None)),
        json.dumps(session_body(ready=True, relay={"ip": "149.28.0.1", "ports": "32000"})),
    ],
    ids=[
        "html",
        "empty",
        "json-list",
        "no-session-id-no-ready",
        "ready-as-string",
        "null-session-id",
        "users-not-a-list",
        "user-without-token",
        "negative-token",
        "token-above-u32",
        "bool-token",
        "non-numeric-token",
        "session-token-list",
        "ready-without-relay",
        "ready-with-garbled-ports",
    ],
)
def test_a_garbled_2xx_body_raises_a_transient_malformed_response_error(client, mocked, body):
    mocked.get(f"{SESSIONS}/abc", body=body, status=200, content_type="application/json")
    with pytest.raises(MalformedResponseError) as caught:
        client.get_session("abc")
    assert isinstance(caught.value, TransientError)
    assert caught.value.status == 200
    assert "GET /v1/relays/sessions/abc" in str(caught.value)


# --- The other endpoints -------------------------------------------------------------------


def test_get_session_404_raises_session_not_found(client, mocked):
    mocked.get(f"{SESSIONS}/gone", status=404, json={"message": "Relay Session not found"})
    with pytest.raises(SessionNotFound) as caught:
        client.get_session("gone")
    assert isinstance(caught.value, PermanentError)
    assert caught.value.status == 404
    assert caught.value.message == "Relay Session not found"


def test_delete_session_answers_true_on_204(client, mocked):
    mocked.delete(f"{SESSIONS}/abc", status=204)
    assert client.delete_session("abc") is True


def test_delete_session_answers_false_on_404_without_raising(client, mocked):
    mocked.delete(f"{SESSIONS}/abc", status=404, json={"message": "not found"})
    assert client.delete_session("abc") is False


def test_delete_session_still_raises_on_server_error(client, mocked):
    mocked.delete(f"{SESSIONS}/abc", status=500, json={"message": "boom"})
    with pytest.raises(TransientError):
        client.delete_session("abc")


def test_authorize_user_reads_the_singular_session_user(client, mocked):
    answer = session_body("abc", ready=True)
    del answer["session_users"]
    answer["session_user"] = {
        "ip_address": OTHER_IP,
        "latitude": None,
        "longitude": None,
        "authorization_token": 4294967295,
    }
    mocked.post(AUTHORIZE, json=answer)
    user = client.authorize_user("abc", OTHER_IP)
    assert user == SessionUser(OTHER_IP, 4294967295, None, None)
    assert json.loads(mocked.calls[0].request.body) == {"session_id": "abc", "user_ip": OTHER_IP}


def test_authorize_user_does_not_guess_from_a_plural_session_users_list(client, mocked):
    mocked.post(AUTHORIZE, json=session_body("abc", users=[(HOST_IP, 1), (HOST_IP, 2)]))
    with pytest.raises(MalformedResponseError, match="session_user"):
        client.authorize_user("abc", HOST_IP)


def test_authorize_user_409_is_permanent_with_its_status(client, mocked):
    mocked.post(AUTHORIZE, status=409, json={"message": "User already authorized"})
    with pytest.raises(PermanentError) as caught:
        client.authorize_user("abc", OTHER_IP)
    assert caught.value.status == 409
    assert caught.value.message == "User already authorized"


@pytest.mark.parametrize(
    "answer",
    [{"status": 200, "json": session_body("abc")}, {"status": 204}],
    ids=["200-with-session", "204-no-body"],
)
def test_revoke_user_accepts_200_with_a_body_or_204_without(client, mocked, answer):
    mocked.post(REVOKE, **answer)
    assert client.revoke_user("abc", 3500589645) is None
    sent = json.loads(mocked.calls[0].request.body)
    assert sent == {"session_id": "abc", "authorization_token": 3500589645}


def test_revoke_user_refuses_a_token_that_is_not_an_int(client):
    with pytest.raises(TypeError):
        client.revoke_user("abc", "3500589645")
    with pytest.raises(ValueError):
        client.revoke_user("abc", 2**32)


# --- Listing -------------------------------------------------------------------------------


def test_list_sessions_follows_has_next_to_the_last_page(client, mocked):
    mocked.get(
        SESSIONS,
        json=list_page([session_body("s1"), session_body("s2")], 1, 3),
        match=[responses.matchers.query_param_matcher({})],
    )
    mocked.get(
        SESSIONS,
        json=list_page([session_body("s3")], 2, 3),
        match=[responses.matchers.query_param_matcher({"page": "2"})],
    )
    mocked.get(
        SESSIONS,
        json=list_page([session_body("s4", ready=True)], 3, 3),
        match=[responses.matchers.query_param_matcher({"page": "3"})],
    )
    sessions = client.list_sessions()
    assert [s.session_id for s in sessions] == ["s1", "s2", "s3", "s4"]
    assert len(mocked.calls) == 3


def test_list_sessions_without_pagination_is_one_page(client, mocked):
    mocked.get(SESSIONS, json={"sessions": [session_body("s1")]})
    assert [s.session_id for s in client.list_sessions()] == ["s1"]


def test_list_sessions_stops_when_the_server_ignores_the_page_parameter(client, mocked):
    # Always page 1 with has_next: a naive client loops forever.
    mocked.get(SESSIONS, json=list_page([session_body("s1")], 1, 3))
    with pytest.raises(PaginationError):
        client.list_sessions()
    assert len(mocked.calls) == 2


def test_list_sessions_stops_when_a_next_page_number_repeats(client, mocked):
    looping = list_page([session_body("s1")], 1, 3)
    looping["pagination"]["number"] = None  # no page numbers to catch it by
    looping["pagination"]["next_page_number"] = 2
    mocked.get(SESSIONS, json=looping)
    with pytest.raises(PaginationError):
        client.list_sessions()
    assert len(mocked.calls) == 2


def test_list_sessions_gives_up_after_max_pages(client, mocked):
    for number in range(1, 6):
        mocked.get(
            SESSIONS,
            json=list_page([session_body(f"s{number}")], number, 100),
            match=[
                responses.matchers.query_param_matcher({"page": str(number)} if number > 1 else {})
            ],
        )
    with pytest.raises(PaginationError, match="after 4"):
        client.list_sessions(max_pages=4)
    assert len(mocked.calls) == 4


def test_list_sessions_returns_a_session_seen_on_two_pages_once(client, mocked):
    mocked.get(
        SESSIONS,
        json=list_page([session_body("s1"), session_body("s2")], 1, 2),
        match=[responses.matchers.query_param_matcher({})],
    )
    mocked.get(
        SESSIONS,
        json=list_page([session_body("s2"), session_body("s3")], 2, 2),
        match=[responses.matchers.query_param_matcher({"page": "2"})],
    )
    assert [s.session_id for s in client.list_sessions()] == ["s1", "s2", "s3"]


# --- Error classes -------------------------------------------------------------------------


def test_429_with_retry_after_seconds_is_transient_with_that_delay(client, mocked):
    mocked.get(
        f"{SESSIONS}/abc",
        status=429,
        json={"message": "Too many requests"},
        headers={"Retry-After": "12"},
    )
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert caught.value.status == 429
    assert caught.value.retry_after == 12.0
    assert caught.value.message == "Too many requests"


def test_429_without_retry_after_has_no_delay(client, mocked):
    mocked.get(f"{SESSIONS}/abc", status=429, json={"message": "slow down"})
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert caught.value.status == 429
    assert caught.value.retry_after is None


def test_429_with_an_http_date_retry_after_converts_it_to_seconds(client, mocked):
    when = datetime.now(UTC) + timedelta(seconds=30)
    mocked.get(
        f"{SESSIONS}/abc",
        status=429,
        headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)},
    )
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert 25 <= caught.value.retry_after <= 30


@pytest.mark.parametrize(
    ("header", "expected"),
    [("soon", None), ("nan", None), ("-5", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_429_with_an_unusable_or_past_retry_after(client, mocked, header, expected):
    mocked.post(SESSIONS, status=429, headers={"Retry-After": header})
    with pytest.raises(TransientError) as caught:
        client.create_session([HOST_IP])
    assert caught.value.retry_after == expected


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_transient(client, mocked, status):
    mocked.get(f"{SESSIONS}/abc", status=status, json={"message": "temporarily unavailable"})
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert not isinstance(caught.value, PermanentError)
    assert caught.value.status == status
    assert caught.value.message == "temporarily unavailable"


def test_503_honours_retry_after(client, mocked):
    mocked.get(f"{SESSIONS}/abc", status=503, headers={"Retry-After": "3"})
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("connection refused"),
        requests.ConnectTimeout("connect timed out"),
        requests.ReadTimeout("read timed out"),
    ],
    ids=["connection-error", "connect-timeout", "read-timeout"],
)
def test_connection_errors_and_timeouts_are_transient(client, mocked, failure):
    mocked.get(f"{SESSIONS}/abc", body=failure)
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert caught.value.status is None
    assert caught.value.retry_after is None
    assert "GET /v1/relays/sessions/abc" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "users: at least one user is required"), (401, "Missing token"), (403, "Forbidden")],
)
def test_4xx_is_permanent_with_edgegap_message(client, mocked, status, message):
    mocked.post(SESSIONS, status=status, json={"message": message})
    with pytest.raises(PermanentError) as caught:
        client.create_session([HOST_IP])
    error = caught.value
    assert not isinstance(error, TransientError)
    assert error.status == status
    assert error.message == message
    assert str(error) == f"Edgegap POST /v1/relays/sessions -> {status}: rejected: {message}"


def test_a_4xx_without_a_json_body_is_permanent_without_message(client, mocked):
    mocked.post(SESSIONS, status=400, body="<html>Bad Request</html>")
    with pytest.raises(PermanentError) as caught:
        client.create_session([HOST_IP])
    assert caught.value.status == 400
    assert caught.value.message is None


def test_a_redirect_is_not_followed(client, mocked):
    mocked.post(SESSIONS, status=301, headers={"Location": "https://elsewhere.test/"})
    with pytest.raises(PermanentError) as caught:
        client.create_session([HOST_IP])
    assert caught.value.status == 301
    assert len(mocked.calls) == 1


def test_errors_keep_their_attributes_through_pickling(client, mocked):
    mocked.get(f"{SESSIONS}/abc", status=429, headers={"Retry-After": "4"}, json={"message": "m"})
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is TransientError
    assert (copy.status, copy.retry_after, copy.message, str(copy)) == (
        429,
        4.0,
        "m",
        str(caught.value),
    )


# --- Keeping the token secret --------------------------------------------------------------


def assert_secret_absent(error):
    rendered = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), rendered, repr(vars(error))):
        assert TOKEN not in text
    # The requests exception (holding the PreparedRequest and its headers) is not chained.
    assert error.__cause__ is None
    assert error.__context__ is None


def test_the_token_is_in_no_error_log_line_or_repr(client, mocked, caplog):
    caplog.set_level(logging.DEBUG)

    def chatty_failure(request):
        # A requests exception that carries the request, and even quotes its headers.
        return requests.ConnectionError(f"failed sending {dict(request.headers)}", request=request)

    mocked.add_callback(responses.GET, f"{SESSIONS}/conn", callback=chatty_failure)
    mocked.get(f"{SESSIONS}/timeout", body=requests.ReadTimeout("read timed out"))
    mocked.get(f"{SESSIONS}/garbled", body="<html>oops</html>")
    mocked.get(f"{SESSIONS}/limited", status=429, headers={"Retry-After": "1"})
    mocked.get(f"{SESSIONS}/down", status=503, json={"message": "maintenance"})
    # A proxy echoing the request's Authorization header back in the message.
    mocked.get(f"{SESSIONS}/echo", status=401, json={"message": f"bad header 'token {TOKEN}'"})
    mocked.get(f"{SESSIONS}/denied", status=403, json={"message": "Forbidden"})
    mocked.get(f"{SESSIONS}/gone", status=404, json={"message": "not found"})
    mocked.get(f"{SESSIONS}/ok", json=session_body("ok"))
    mocked.delete(f"{SESSIONS}/ok", status=204)

    errors = []
    for name in ("conn", "timeout", "garbled", "limited", "down", "echo", "denied", "gone"):
        with pytest.raises(EdgegapError) as caught:
            client.get_session(name)
        errors.append(caught.value)
    client.get_session("ok")
    client.delete_session("ok")

    for error in errors:
        assert_secret_absent(error)
    assert errors[5].message == "bad header 'token ***'"
    assert caplog.records, "each call is logged"
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)
    assert TOKEN not in repr(vars(client))


def test_each_call_is_logged_with_method_path_status_and_duration(client, mocked, caplog):
    caplog.set_level(logging.DEBUG, logger="relays.client")
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc"))
    mocked.delete(f"{SESSIONS}/abc", status=404)
    client.get_session("abc")
    client.delete_session("abc")
    messages = [r.getMessage() for r in caplog.records if r.name == "relays.client"]
    assert len(messages) == 2
    assert messages[0].startswith("edgegap GET /v1/relays/sessions/abc -> 200 in ")
    assert messages[0].endswith(" ms")
    assert messages[1].startswith("edgegap DELETE /v1/relays/sessions/abc -> 404 in ")


def test_a_token_with_whitespace_is_refused_without_being_echoed():
    with pytest.raises(ValueError) as caught:
        EdgegapClient(BASE, "abc\r\nX-Evil: 1", 5)
    assert "abc" not in str(caught.value)


# --- Settings ------------------------------------------------------------------------------


def test_from_settings_reads_url_token_and_timeout(settings, mocked):
    settings.EDGEGAP_API_URL = "http://127.0.0.1:8765/"
    settings.EDGEGAP_API_TOKEN = "emulator-dev-token"
    settings.EDGEGAP_TIMEOUT = 2.5
    mocked.delete("http://127.0.0.1:8765/v1/relays/sessions/abc", status=204)
    edgegap = get_client()
    assert edgegap.base_url == "http://127.0.0.1:8765"
    assert edgegap.delete_session("abc") is True
    assert mocked.calls[0].request.headers["Authorization"] == "token emulator-dev-token"
    assert mocked.calls[0].request.req_kwargs["timeout"] == 2.5


def test_from_settings_without_an_api_url_is_improperly_configured(settings):
    settings.EDGEGAP_API_URL = None
    with pytest.raises(ImproperlyConfigured, match="EDGEGAP_API_URL"):
        EdgegapClient.from_settings()


# --- Matching users to seats ---------------------------------------------------------------


def test_users_returned_in_another_order_are_matched_to_seats_by_ip(client, mocked):
    mocked.post(
        SESSIONS,
        json=session_body(users=[(OTHER_IP, 300), (HOST_IP, 100), (CLIENT_IP, 200)]),
    )
    session = client.create_session([HOST_IP, CLIENT_IP, OTHER_IP])
    assert session.user_tokens_for([HOST_IP, CLIENT_IP, OTHER_IP]) == [100, 200, 300]
    assert [u.ip_address for u in session.users_for([HOST_IP, CLIENT_IP, OTHER_IP])] == [
        HOST_IP,
        CLIENT_IP,
        OTHER_IP,
    ]


def test_players_sharing_an_ip_are_matched_in_the_order_returned():
    users = [
        SessionUser(CLIENT_IP, 20),
        SessionUser(HOST_IP, 11),
        SessionUser(HOST_IP, 12),
        SessionUser(HOST_IP, 13),
    ]
    matched = match_users([HOST_IP, HOST_IP, CLIENT_IP, HOST_IP], users)
    assert [u.authorization_token for u in matched] == [11, 12, 20, 13]


def test_ips_match_by_value_not_spelling():
    users = [SessionUser("::ffff:203.0.113.10", 1), SessionUser("2001:db8::1", 2)]
    matched = match_users(["2001:DB8:0::1", HOST_IP], users)
    assert [u.authorization_token for u in matched] == [2, 1]


@pytest.mark.parametrize(
    ("requested", "returned"),
    [
        ([HOST_IP, CLIENT_IP], [HOST_IP]),
        ([HOST_IP], [HOST_IP, CLIENT_IP]),
        ([HOST_IP, CLIENT_IP], [HOST_IP, OTHER_IP]),
        ([HOST_IP, HOST_IP], [HOST_IP, CLIENT_IP]),
    ],
    ids=["fewer-users", "more-users", "unknown-ip", "missing-duplicate"],
)
def test_match_users_refuses_when_users_and_seats_do_not_pair_up(requested, returned):
    users = [SessionUser(ip, index) for index, ip in enumerate(returned)]
    with pytest.raises(UserMatchError):
        match_users(requested, users)
