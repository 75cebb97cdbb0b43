"""The Edgegap client against `responses` stubs and, where only real sockets show the failure, a
scripted TCP peer: every quirk of edgegap-relay.md pinned."""

import email.utils
import json
import logging
import pickle
import socket
import struct
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured

import relays.edgegap
from relays.edgegap import (
    AnswerLost,
    EdgegapClient,
    EdgegapError,
    EdgegapSession,
    MalformedResponseError,
    PaginationError,
    PermanentError,
    RelayEndpoint,
    SessionListing,
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
        json.dumps(session_body(session_id="")),
        json.dumps(session_body(session_users={"ip_address": HOST_IP})),
        json.dumps(session_body(session_users=["203.0.113.10"])),
        json.dumps(session_body(users=[(HOST_IP, -1)])),
        json.dumps(session_body(users=[(HOST_IP, 2**32)])),
        json.dumps(session_body(users=[(HOST_IP, True)])),
        json.dumps(session_body(users=[(HOST_IP, "12ab")])),
        json.dumps(session_body(users=[(12345, 7)])),
        json.dumps(session_body(authorization_token=[1])),
        json.dumps(session_body(authorization_token=-5)),
        json.dumps(session_body(linked="false")),
    ],
    ids=[
        "html",
        "empty",
        "json-list",
        "no-session-id-no-ready",
        "ready-as-string",
        "null-session-id",
        "empty-session-id",
        "users-not-a-list",
        "user-not-an-object",
        "negative-token",
        "token-above-u32",
        "bool-token",
        "non-numeric-token",
        "tokened-user-with-a-numeric-ip",
        "session-token-list",
        "negative-session-token",
        "linked-as-string",
    ],
)
def test_a_garbled_2xx_body_raises_a_transient_malformed_response_error(client, mocked, body):
    mocked.get(f"{SESSIONS}/abc", body=body, status=200, content_type="application/json")
    with pytest.raises(MalformedResponseError) as caught:
        client.get_session("abc")
    assert isinstance(caught.value, TransientError)
    assert caught.value.status == 200
    assert "GET /v1/relays/sessions/abc" in str(caught.value)


# Lenient where the contract allows absence, exact where a value is present (issue #9, item 5).

READY_RELAY = {
    "ip": "149.28.0.1",
    "host": "relay-1.edgegap.test",
    "ports": {"server": {"port": 32000}, "client": {"port": 32001}},
}


def test_the_client_side_session_type_is_edgegap_session(client, mocked):
    # The database model is `relays.models.RelaySession`; the client's type no longer shares it.
    mocked.post(SESSIONS, json=session_body())
    assert type(client.create_session([HOST_IP])) is EdgegapSession
    assert not hasattr(relays.edgegap, "RelaySession")


def test_a_create_answer_with_null_tokens_and_tokenless_users_parses(client, mocked):
    # What Edgegap may answer before READY: no session token, users listed by IP only.
    answer = {
        "session_id": "7349356945f1-S",
        "authorization_token": None,
        "status": "Initializing",
        "ready": False,
        "linked": False,
        "error": None,
        "session_users": [
            {
                "ip_address": HOST_IP,
                "latitude": None,
                "longitude": None,
                "authorization_token": None,
            },
            {"ip_address": CLIENT_IP},
        ],
        "relay": None,
        "webhook_url": "https://lobby.test/hook",
    }
    mocked.post(SESSIONS, json=answer)
    session = client.create_session([HOST_IP, CLIENT_IP], webhook_url="https://lobby.test/hook")
    assert session.session_id == "7349356945f1-S"
    assert session.authorization_token is None
    assert session.ready is False
    assert session.users == ()
    assert session.listed_ips == (HOST_IP, CLIENT_IP)
    assert session.webhook_url == "https://lobby.test/hook"
    # No user has a token yet, so no seat can be handed one.
    with pytest.raises(UserMatchError):
        session.user_tokens_for([HOST_IP, CLIENT_IP])


@pytest.mark.parametrize(
    "answer",
    [
        {"session_id": "s", "ready": False, "linked": False, "status": "Initializing"},
        {**session_body("s"), "session_users": None},
        {**session_body("s"), "session_users": []},
    ],
    ids=["required-fields-only", "users-null", "users-empty"],
)
def test_a_create_answer_listing_no_users_parses(client, mocked, answer):
    mocked.post(SESSIONS, json=answer)
    session = client.create_session([HOST_IP])
    assert (session.session_id, session.ready, session.users, session.listed_ips) == (
        "s",
        False,
        (),
        (),
    )
    assert session.relay is None
    assert session.error is None


def test_only_users_with_a_token_are_listed_as_users_but_every_ip_is_kept(client, mocked):
    body = session_body("abc", users=[(HOST_IP, 11)])
    body["session_users"].append({"ip_address": CLIENT_IP, "authorization_token": None})
    mocked.get(f"{SESSIONS}/abc", json=body)
    session = client.get_session("abc")
    assert session.users == (SessionUser(HOST_IP, 11, 45.5, -73.5),)
    assert session.listed_ips == (HOST_IP, CLIENT_IP)


@pytest.mark.parametrize("ip_field", [{}, {"ip_address": None}, {"ip_address": ""}])
def test_a_user_without_an_ip_address_keeps_its_token(client, mocked, ip_field):
    body = session_body("abc", session_users=[{"authorization_token": 3500589645, **ip_field}])
    mocked.get(f"{SESSIONS}/abc", json=body)
    session = client.get_session("abc")
    assert session.users == (SessionUser(None, 3500589645),)
    assert session.listed_ips == ()


@pytest.mark.parametrize("token_field", [{"authorization_token": None}, {}], ids=["null", "absent"])
def test_a_ready_session_without_a_session_token_is_not_ready(client, mocked, token_field):
    body = session_body("abc", ready=True, users=[(HOST_IP, 11)])
    del body["authorization_token"]
    body.update(token_field)
    mocked.get(f"{SESSIONS}/abc", json=body)
    session = client.get_session("abc")
    # Everything else is there: only the missing token keeps players from a "ready" assignment.
    assert session.relay is not None
    assert session.users == (SessionUser(HOST_IP, 11, 45.5, -73.5),)
    assert session.authorization_token is None
    assert session.ready is False


@pytest.mark.parametrize(
    "relay",
    [
        None,
        {"ip": "149.28.0.1"},
        {"ip": "149.28.0.1", "ports": "32000"},
        {"ip": "149.28.0.1", "ports": {"server": {"port": 32000}}},
        {"ip": "149.28.0.1", "ports": {"server": {"port": 0}, "client": {"port": 32001}}},
        {"ip": "149.28.0.1", "ports": {"server": {"port": "32000"}, "client": {"port": 32001}}},
        {"ports": READY_RELAY["ports"]},
        {"ip": "", "host": "", "ports": READY_RELAY["ports"]},
        {"ip": "relay-1.edgegap.test", "ports": READY_RELAY["ports"]},
        "149.28.0.1:32000",
    ],
    ids=[
        "null",
        "no-ports",
        "ports-not-an-object",
        "no-client-port",
        "port-zero",
        "port-as-string",
        "no-ip",
        "blank-ip",
        "hostname-as-ip",
        "relay-as-string",
    ],
)
def test_a_ready_session_without_a_usable_relay_is_not_ready(client, mocked, relay):
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc", ready=True, relay=relay))
    session = client.get_session("abc")  # incomplete, not malformed: keep polling
    assert session.relay is None
    assert session.ready is False
    assert session.authorization_token == 3500589645


def test_a_ready_session_with_its_token_and_a_complete_relay_is_ready(client, mocked):
    # The control for the two tests above: the same body with nothing missing reads ready.
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc", ready=True, relay=READY_RELAY))
    session = client.get_session("abc")
    assert session.ready is True
    # Without a host the IP stands in; without a protocol it is UDP.
    assert session.relay == RelayEndpoint("149.28.0.1", "relay-1.edgegap.test", 32000, 32001)
    relay = {key: value for key, value in READY_RELAY.items() if key != "host"}
    mocked.get(f"{SESSIONS}/nohost", json=session_body("nohost", ready=True, relay=relay))
    assert client.get_session("nohost").relay == RelayEndpoint(
        "149.28.0.1", "149.28.0.1", 32000, 32001, "UDP"
    )


def test_a_session_edgegap_does_not_call_ready_is_not_ready_even_when_complete(client, mocked):
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc", ready=False, relay=READY_RELAY))
    session = client.get_session("abc")
    assert session.relay is not None
    assert session.ready is False


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


def stub_page(mocked, number, sessions=None, num_pages=2, **answer):
    """Page `number` of the list (page 1 is requested without `?page=`, as the client does)."""
    if not answer:
        answer = {"json": list_page(sessions, number, num_pages)}
    query = {"page": str(number)} if number > 1 else {}
    mocked.get(SESSIONS, match=[responses.matchers.query_param_matcher(query)], **answer)


def ids(listing):
    return [session.session_id for session in listing.sessions]


def test_list_sessions_follows_has_next_to_the_last_page(client, mocked):
    stub_page(mocked, 1, [session_body("s1"), session_body("s2")], 3)
    stub_page(mocked, 2, [session_body("s3")], 3)
    stub_page(mocked, 3, [session_body("s4", ready=True)], 3)
    listing = client.list_sessions()
    assert type(listing) is SessionListing
    assert ids(listing) == ["s1", "s2", "s3", "s4"]
    assert listing.complete is True
    assert listing.sessions[3].ready is True
    assert len(mocked.calls) == 3


def test_list_sessions_without_pagination_is_one_complete_page(client, mocked):
    mocked.get(SESSIONS, json={"sessions": [session_body("s1")]})
    listing = client.list_sessions()
    assert (ids(listing), listing.complete) == (["s1"], True)


def test_list_sessions_of_an_empty_account_is_complete(client, mocked):
    stub_page(mocked, 1, [], 1)
    assert client.list_sessions() == SessionListing((), complete=True)


def test_list_sessions_stops_incomplete_when_the_server_ignores_the_page_parameter(client, mocked):
    # Always page 1 with has_next: a naive client loops forever.
    mocked.get(SESSIONS, json=list_page([session_body("s1")], 1, 3))
    listing = client.list_sessions()  # no PaginationError any more: the caller keeps what it saw
    assert (ids(listing), listing.complete) == (["s1"], False)
    assert len(mocked.calls) == 2


def test_list_sessions_stops_incomplete_when_a_next_page_number_repeats(client, mocked):
    looping = list_page([session_body("s1")], 1, 3)
    looping["pagination"]["number"] = None  # no page numbers to catch it by
    looping["pagination"]["next_page_number"] = 2
    mocked.get(SESSIONS, json=looping)
    listing = client.list_sessions()
    assert (ids(listing), listing.complete) == (["s1"], False)
    assert len(mocked.calls) == 2


def test_list_sessions_stops_incomplete_after_max_pages(client, mocked, caplog):
    for number in range(1, 6):
        stub_page(mocked, number, [session_body(f"s{number}")], 100)
    listing = client.list_sessions(max_pages=4)
    assert (ids(listing), listing.complete) == (["s1", "s2", "s3", "s4"], False)
    assert len(mocked.calls) == 4
    assert "still more pages after 4" in caplog.text


def test_list_sessions_returns_a_session_seen_on_two_pages_once(client, mocked):
    stub_page(mocked, 1, [session_body("s1"), session_body("s2")])
    stub_page(mocked, 2, [session_body("s2"), session_body("s3")])
    listing = client.list_sessions()
    assert (ids(listing), listing.complete) == (["s1", "s2", "s3"], True)


def test_garbled_list_entries_keep_their_id_and_make_the_listing_incomplete(client, mocked):
    page_one = [
        session_body("s1"),
        session_body("g1", ready="yes"),
        session_body("g2", users=[(HOST_IP, -1)]),
        {"ready": True, "status": "READY"},  # no id: nothing to keep
        session_body(""),
        "s9",
    ]
    stub_page(mocked, 1, page_one)
    stub_page(mocked, 2, [session_body("s3", ready=True)])
    listing = client.list_sessions()
    # The walk went on past the garbled entries: what could be read was read.
    assert ids(listing) == ["s1", "g1", "g2", "s3"]
    assert listing.complete is False
    by_id = {session.session_id: session for session in listing.sessions}
    # Only existence is known of a garbled entry: no status, token, users or webhook to act on.
    assert by_id["g1"] == EdgegapSession(session_id="g1", garbled=True)
    assert by_id["g2"] == EdgegapSession(session_id="g2", garbled=True)
    assert not by_id["s1"].garbled and not by_id["s3"].garbled
    assert by_id["s3"].ready is True


def test_tokenless_users_in_a_list_entry_do_not_make_it_garbled(client, mocked):
    entry = session_body("s1", authorization_token=None)
    entry["session_users"] = [{"ip_address": HOST_IP, "authorization_token": None}]
    stub_page(mocked, 1, [entry], 1)
    listing = client.list_sessions()
    assert listing.complete is True
    assert listing.sessions[0].garbled is False
    assert listing.sessions[0].listed_ips == (HOST_IP,)


# Each failure with how many times the page is asked: a transient failure is asked again (3 in
# all, after 0.1 s then 0.2 s); a page that vanished (404, 400) or a Retry-After above a second
# ends the walk at once.
LATER_PAGE_FAILURES = {
    "429-long-retry-after": (
        {"status": 429, "json": {"message": "slow down"}, "headers": {"Retry-After": "9"}},
        1,
    ),
    "429": ({"status": 429, "json": {"message": "slow down"}}, 3),
    "500": ({"status": 500, "json": {"message": "boom"}}, 3),
    "503": ({"status": 503, "json": {"message": "temporarily unavailable"}}, 3),
    "404-page-vanished": ({"status": 404, "json": {"message": "Invalid page."}}, 1),
    "400-page-vanished": ({"status": 400, "json": {"message": "page out of range"}}, 1),
    "answer-lost": ({"body": requests.ReadTimeout("read timed out")}, 3),
    "connection-error": ({"body": requests.ConnectionError("connection reset by peer")}, 3),
    "garbled-page": ({"body": "<html>502 Bad Gateway</html>", "content_type": "text/html"}, 3),
    "page-without-sessions": ({"json": {"total_count": 3}}, 3),
}


@pytest.mark.parametrize(
    ("failure", "asked"), LATER_PAGE_FAILURES.values(), ids=LATER_PAGE_FAILURES.keys()
)
def test_a_later_page_failing_gives_what_was_read_and_incomplete(
    client, mocked, caplog, failure, asked
):
    stub_page(mocked, 1, [session_body("s1"), session_body("s2")], 3)
    stub_page(mocked, 2, **failure)
    stub_page(mocked, 3, [session_body("s5")], 3)
    started = time.monotonic()
    listing = client.list_sessions()  # no error: the caller keeps what it saw
    elapsed = time.monotonic() - started
    assert ids(listing) == ["s1", "s2"]
    assert listing.complete is False
    # The walk ends at page 2: page 3 is never asked for.
    urls = [call.request.url for call in mocked.calls]
    assert urls == [SESSIONS] + [f"{SESSIONS}?page=2"] * asked
    assert "edgegap list stopped at /v1/relays/sessions?page=2" in caplog.text
    assert elapsed < 2  # short pauses only: a walk holds a lock and a worker


ONCE_FAILURES = {
    "429": {"status": 429},
    "429-retry-after-0": {"status": 429, "headers": {"Retry-After": "0"}},
    "503": {"status": 503},
    "answer-lost": {"body": requests.ReadTimeout("read timed out")},
    "garbled-page": {"body": "<html>502 Bad Gateway</html>"},
}


@pytest.mark.parametrize("failure", ONCE_FAILURES.values(), ids=ONCE_FAILURES.keys())
@pytest.mark.parametrize("page", [1, 2])
def test_a_page_failing_once_is_asked_again_and_the_walk_completes(client, mocked, page, failure):
    # One fault in a long walk must not leave it incomplete (issue #9, item 3: 429s on 30 % of
    # calls aborted 20 of 28 reconciliation passes).
    pages = {1: [session_body("s1")], 2: [session_body("s2")]}
    for number in (1, 2):
        if number == page:
            stub_page(mocked, number, **failure)  # `responses` serves the first match once
        stub_page(mocked, number, pages[number])
    listing = client.list_sessions()
    assert (ids(listing), listing.complete) == (["s1", "s2"], True)
    assert len(mocked.calls) == 3


def test_a_short_retry_after_sets_the_pause_before_asking_again(client, mocked):
    stub_page(mocked, 1, [session_body("s1")])
    stub_page(mocked, 2, status=503, headers={"Retry-After": "0.6"})
    stub_page(mocked, 2, [session_body("s2")])
    started = time.monotonic()
    listing = client.list_sessions()
    elapsed = time.monotonic() - started
    assert (ids(listing), listing.complete) == (["s1", "s2"], True)
    assert 0.55 <= elapsed < 2  # the 0.6 s asked for, not the usual 0.1 s


FIRST_PAGE_FAILURES = {
    "429-long-retry-after": ({"status": 429, "headers": {"Retry-After": "9"}}, TransientError, 1),
    "503": ({"status": 503, "json": {"message": "down"}}, TransientError, 3),
    "404": ({"status": 404, "json": {"message": "not found"}}, PermanentError, 1),
    "400": ({"status": 400, "json": {"message": "bad"}}, PermanentError, 1),
    "401": ({"status": 401, "json": {"message": "Missing token"}}, PermanentError, 1),
    "answer-lost": ({"body": requests.ReadTimeout("read timed out")}, AnswerLost, 3),
    "garbled-page": ({"body": "<html>oops</html>"}, MalformedResponseError, 3),
}


@pytest.mark.parametrize(
    ("failure", "error_class", "asked"),
    FIRST_PAGE_FAILURES.values(),
    ids=FIRST_PAGE_FAILURES.keys(),
)
def test_a_first_page_failing_raises(client, mocked, failure, error_class, asked):
    # Nothing was seen: an empty "incomplete" listing would invite a caller to act on nothing.
    stub_page(mocked, 1, **failure)
    with pytest.raises(error_class) as caught:
        client.list_sessions()
    assert type(caught.value) is error_class
    assert not isinstance(caught.value, PaginationError)
    assert "GET /v1/relays/sessions" in str(caught.value)
    assert len(mocked.calls) == asked


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
    assert not isinstance(caught.value, AnswerLost)
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
    # An answer came back: nothing was lost, a create need not look for what it made.
    assert not isinstance(caught.value, AnswerLost)
    assert caught.value.status == status
    assert caught.value.message == "temporarily unavailable"


def test_503_honours_retry_after(client, mocked):
    mocked.get(f"{SESSIONS}/abc", status=503, headers={"Retry-After": "3"})
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        # A connection error whose cause cannot be placed may have reached Edgegap: assume so.
        (requests.ConnectionError("connection failed"), AnswerLost),
        (requests.ConnectTimeout("connect timed out"), TransientError),
        (requests.ReadTimeout("read timed out"), AnswerLost),
        (requests.exceptions.ChunkedEncodingError("cut off"), AnswerLost),
    ],
    ids=["connection-error", "connect-timeout", "read-timeout", "cut-off"],
)
def test_connection_errors_and_timeouts_are_transient(client, mocked, failure, error_class):
    # The real sockets below show which failure is which; this pins the class per exception.
    mocked.get(f"{SESSIONS}/abc", body=failure)
    with pytest.raises(TransientError) as caught:
        client.get_session("abc")
    assert type(caught.value) is error_class
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
    mocked.get(f"{SESSIONS}/lost", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(AnswerLost) as caught:
        client.get_session("lost")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is AnswerLost
    assert (copy.path, copy.status, copy.retry_after, str(copy)) == (
        "/v1/relays/sessions/lost",
        None,
        None,
        str(caught.value),
    )


# --- Lost answers on real sockets ---------------------------------------------------------
# `responses` replaces the transport above the socket, so it cannot show what requests and urllib3
# really raise when a peer closes early, cuts an answer off or never answers. These tests use a
# real TCP peer on 127.0.0.1 that plays one scripted reply per connection.


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class ScriptedPeer:
    """An HTTP/1.1 peer that reads each request in full, then replies with `reply(conn, stop)`."""

    def __init__(self, reply):
        self.reply = reply
        self.received = []
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                self.received.append(read_request(conn))
                self.reply(conn, self.stop)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


ANSWER = json.dumps(session_body("real-1", users=[(HOST_IP, 21986334)])).encode()
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


def answer_in_full(conn, stop):
    conn.sendall(HEAD % len(ANSWER) + ANSWER)


def close_without_answer(conn, stop):
    pass  # the connection closes when the handler returns


def reset_without_answer(conn, stop):
    # Linger 0: close() sends RST, the client sees "connection reset by peer".
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def answer_half_the_body(conn, stop):
    conn.sendall(HEAD % len(ANSWER) + ANSWER[: len(ANSWER) // 2])


def stall_mid_body(conn, stop):
    conn.sendall(HEAD % len(ANSWER) + ANSWER[: len(ANSWER) // 2])
    stop.wait(5)


def never_answer(conn, stop):
    stop.wait(5)


@pytest.fixture
def peer():
    peers = []

    def start(reply):
        peers.append(ScriptedPeer(reply))
        return peers[-1]

    yield start
    for each in peers:
        each.close()


@pytest.fixture
def refused_url():
    # Bound but not listening: the kernel answers a SYN with RST, so the connect is refused.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()


@pytest.fixture
def unaccepting_url():
    # A listener that never accepts, with its accept queue full: Linux drops further SYNs, so a
    # connect hangs until the client's connect timeout fires. Fill the queue until one hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.settimeout(0.2)
        fillers.append(filler)
        try:
            filler.connect(address)
        except TimeoutError:
            break
    else:
        pytest.skip("this kernel does not drop SYNs to a full accept queue")
    yield f"http://127.0.0.1:{address[1]}"
    for filler in fillers:
        filler.close()
    listener.close()


def create_at(url, caplog, timeout=0.5):
    """One create against `url`; returns (error, seconds). The token must be in neither."""
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with (
        EdgegapClient(url, TOKEN, timeout=timeout) as edgegap,
        pytest.raises(TransientError) as caught,
    ):
        edgegap.create_session([HOST_IP])
    elapsed = time.monotonic() - started
    assert_secret_absent(caught.value)
    assert TOKEN not in caplog.text
    assert "POST /v1/relays/sessions" in str(caught.value)
    return caught.value, elapsed


def test_the_scripted_peer_answering_in_full_is_read(peer):
    # The control: the harness itself works, so the failures below are the replies' doing.
    server = peer(answer_in_full)
    with EdgegapClient(server.url, TOKEN, timeout=2) as edgegap:
        session = edgegap.create_session([HOST_IP])
    assert session.session_id == "real-1"
    assert session.users == (SessionUser(HOST_IP, 21986334, 45.5, -73.5),)
    assert f"Authorization: token {TOKEN}".encode() in server.received[0]


@pytest.mark.parametrize(
    "reply",
    [close_without_answer, reset_without_answer, answer_half_the_body, stall_mid_body],
    ids=["closed-without-answer", "reset-without-answer", "half-a-body", "stalled-mid-body"],
)
def test_a_sent_request_whose_answer_never_arrives_whole_is_answer_lost(peer, caplog, reply):
    server = peer(reply)
    error, elapsed = create_at(server.url, caplog)
    assert type(error) is AnswerLost
    assert error.status is None
    # It really was sent (Edgegap may have made the session), and sent once: no silent retry
    # of a POST that could create a second session.
    assert len(server.received) == 1
    assert server.received[0].startswith(b"POST /v1/relays/sessions HTTP/1.1")
    assert json.loads(server.received[0].partition(b"\r\n\r\n")[2]) == {"users": [{"ip": HOST_IP}]}
    assert elapsed < 3


def test_an_answer_that_never_comes_is_answer_lost_after_the_timeout(peer, caplog):
    server = peer(never_answer)
    error, elapsed = create_at(server.url, caplog, timeout=0.4)
    assert type(error) is AnswerLost
    assert "timed out waiting for the answer" in str(error)
    assert len(server.received) == 1
    assert 0.35 <= elapsed < 3


def test_a_refused_connection_is_a_plain_transient_error(refused_url, caplog):
    error, elapsed = create_at(refused_url, caplog)
    # Nothing left this machine: a create may simply be retried, no need to look for it.
    assert type(error) is TransientError
    assert "connection failed" in str(error)
    assert elapsed < 3


def test_a_connect_timeout_is_a_plain_transient_error(unaccepting_url, caplog):
    error, elapsed = create_at(unaccepting_url, caplog, timeout=0.4)
    assert type(error) is TransientError
    assert "timed out connecting" in str(error)
    assert 0.35 <= elapsed < 3


PAGE_ONE = json.dumps(list_page([session_body("s1")], 1, 2)).encode()
PAGE_TWO = json.dumps(list_page([session_body("s2")], 2, 2)).encode()


def list_on_the_wire(peer, lost):
    """List from a peer that answers page 1, then loses `lost` answers before answering page 2."""
    connections = []

    def reply(conn, stop):
        connections.append(conn)
        # `Connection: close`, so that every request needs a connection of its own.
        head = HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        if len(connections) == 1:
            conn.sendall(head % len(PAGE_ONE) + PAGE_ONE)
        elif len(connections) > 1 + lost:
            conn.sendall(head % len(PAGE_TWO) + PAGE_TWO)
        # otherwise: closed without an answer

    server = peer(reply)
    with EdgegapClient(server.url, TOKEN, timeout=2) as edgegap:
        listing = edgegap.list_sessions()
    return listing, [request.split(b" ")[1].decode() for request in server.received]


def test_a_list_page_lost_once_on_the_wire_is_asked_again(peer):
    listing, paths = list_on_the_wire(peer, lost=1)
    assert (ids(listing), listing.complete) == (["s1", "s2"], True)
    assert paths == ["/v1/relays/sessions"] + ["/v1/relays/sessions?page=2"] * 2


def test_a_list_page_lost_every_time_on_the_wire_gives_page_one_incomplete(peer):
    listing, paths = list_on_the_wire(peer, lost=99)
    assert (ids(listing), listing.complete) == (["s1"], False)
    assert paths == ["/v1/relays/sessions"] + ["/v1/relays/sessions?page=2"] * 3


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


def test_a_list_stopped_by_a_later_page_logs_no_token(client, mocked, caplog):
    # The stop is logged with the page's error, which carries Edgegap's message: a proxy echoing
    # the Authorization header there must not put the token in the log.
    caplog.set_level(logging.DEBUG)
    stub_page(mocked, 1, [session_body("s1")])
    stub_page(mocked, 2, status=401, json={"message": f"bad header 'token {TOKEN}'"})
    listing = client.list_sessions()
    assert (ids(listing), listing.complete) == (["s1"], False)
    assert "bad header 'token ***'" in caplog.text
    assert TOKEN not in caplog.text


def test_each_call_is_logged_with_method_path_status_and_duration(client, mocked, caplog):
    caplog.set_level(logging.DEBUG, logger="relays.edgegap.client")
    mocked.get(f"{SESSIONS}/abc", json=session_body("abc"))
    mocked.delete(f"{SESSIONS}/abc", status=404)
    client.get_session("abc")
    client.delete_session("abc")
    messages = [r.getMessage() for r in caplog.records if r.name == "relays.edgegap.client"]
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


def test_users_without_an_ip_fill_the_leftover_seats_in_order():
    users = [
        SessionUser(None, 1),
        SessionUser(CLIENT_IP, 20),
        SessionUser(None, 2),
        SessionUser(None, 3),
    ]
    matched = match_users([HOST_IP, CLIENT_IP, OTHER_IP, HOST_IP], users)
    # CLIENT_IP's seat is taken by IP first; the others take the IP-less users in listed order.
    assert [u.authorization_token for u in matched] == [1, 20, 2, 3]


def test_an_ip_less_user_takes_a_seat_whose_ip_ran_out():
    # Two players behind one NAT, one of them listed without its IP.
    matched = match_users([HOST_IP, HOST_IP], [SessionUser(None, 2), SessionUser(HOST_IP, 1)])
    assert [u.authorization_token for u in matched] == [1, 2]


@pytest.mark.parametrize(
    ("requested", "returned"),
    [
        ([HOST_IP, CLIENT_IP], [None, OTHER_IP]),
        ([HOST_IP, CLIENT_IP], [None]),
        ([HOST_IP], [None, None]),
    ],
    ids=["ip-less-user-and-a-stranger", "too-few", "too-many"],
)
def test_ip_less_users_never_paper_over_a_mismatch(requested, returned):
    users = [SessionUser(ip, index) for index, ip in enumerate(returned)]
    with pytest.raises(UserMatchError):
        match_users(requested, users)


def test_a_ready_session_of_ip_less_users_hands_tokens_in_seat_order(client, mocked):
    body = session_body("abc", ready=True)
    body["session_users"] = [{"authorization_token": 100}, {"authorization_token": 200}]
    mocked.get(f"{SESSIONS}/abc", json=body)
    session = client.get_session("abc")
    assert session.ready is True
    assert session.user_tokens_for([HOST_IP, CLIENT_IP]) == [100, 200]
