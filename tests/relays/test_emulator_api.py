"""The emulator's REST API through real HTTP: Edgegap's contract (edgegap-relay.md §1), knobs."""

import http.client
import http.server
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from relays.emulator import EmulatorThread, Knobs
from relays.protocol import U32_MAX

TOKEN = "test-token"
SESSIONS = "/v1/relays/sessions"


@pytest.fixture(scope="module")
def emulator_thread():
    with EmulatorThread(token=TOKEN, seed=1234, ready_delay=0.05, validation_delay=0.05) as thread:
        yield thread


@pytest.fixture
def emulator(emulator_thread):
    yield emulator_thread
    emulator_thread.reset()


def call(emulator, method, path, *, token=TOKEN, timeout=5, **kwargs):
    headers = {"Authorization": f"token {token}"} if token is not None else {}
    return requests.request(
        method, emulator.base_url + path, headers=headers, timeout=timeout, **kwargs
    )


def create(emulator, *ips, **body):
    response = call(emulator, "POST", SESSIONS, json={"users": [{"ip": ip} for ip in ips], **body})
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(emulator, session_id, condition, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = call(emulator, "GET", f"{SESSIONS}/{session_id}").json()
        if condition(session):
            return session
        time.sleep(0.02)
    raise AssertionError(f"session {session_id} never met the condition: {session}")


def total_count(emulator):
    return call(emulator, "GET", SESSIONS).json()["total_count"]


# --- Authentication --------------------------------------------------------------------------


def test_a_missing_authorization_header_is_401(emulator):
    response = call(emulator, "GET", SESSIONS, token=None)
    assert response.status_code == 401
    assert "token <key>" in response.json()["message"]


@pytest.mark.parametrize(
    "header", ["Bearer test-token", "Token test-token", "test-token", "token ", "token"]
)
def test_a_malformed_authorization_header_is_401(emulator, header):
    response = requests.get(emulator.base_url + SESSIONS, headers={"Authorization": header})
    assert response.status_code == 401


def test_a_wrong_token_is_403_and_the_message_does_not_echo_it(emulator):
    response = call(emulator, "GET", SESSIONS, token="not-the-token")
    assert response.status_code == 403
    assert "not-the-token" not in response.text
    assert TOKEN not in response.text


def test_control_endpoints_need_the_same_authorization(emulator):
    assert call(emulator, "GET", "/_emulator/config", token=None).status_code == 401
    assert call(emulator, "POST", "/_emulator/reset", token="wrong").status_code == 403


# --- Sessions --------------------------------------------------------------------------------


def shape_of_pending_users(session):
    """Which of Edgegap's pre-READY shapes `session_users` takes (edgegap-relay.md §1)."""
    if "session_users" not in session:
        return "absent"
    users = session["session_users"]
    if not users:
        return "empty"
    if all(set(user) == {"ip_address"} for user in users):
        return "no_token"
    assert all(user["authorization_token"] is None for user in users), users
    return "null_token"


def test_a_new_session_is_initializing_without_tokens_then_ready_with_tokens_and_a_relay(emulator):
    emulator.config(ready_delay=0.2)
    session = create(emulator, "203.0.113.1", "198.51.100.2")
    assert session["session_id"].endswith("-S")
    assert (session["status"], session["ready"], session["linked"]) == (
        "Initializing",
        False,
        False,
    )
    assert (session["authorization_token"], session["relay"]) == (None, None)
    assert session["error"] is None
    assert session["webhook_url"] is None
    shape_of_pending_users(session)  # one of the shapes Edgegap allows, none with a token

    ready = wait_until(emulator, session["session_id"], lambda s: s["ready"])
    assert (ready["status"], ready["linked"]) == ("READY", True)
    assert 0 < ready["authorization_token"] <= U32_MAX
    users = ready["session_users"]
    assert [user["ip_address"] for user in users] == ["203.0.113.1", "198.51.100.2"]
    assert all(0 < user["authorization_token"] <= U32_MAX for user in users)
    assert {"latitude", "longitude"} <= set(users[0])
    relay = ready["relay"]
    assert (relay["ip"], relay["host"]) == ("127.0.0.1", "localhost")
    server, client = relay["ports"]["server"], relay["ports"]["client"]
    assert server["protocol"] == client["protocol"] == "UDP"
    assert server["port"] != client["port"]
    assert server["link"] == f"localhost:{server['port']}"


def test_answers_before_ready_take_every_shape_edgegap_allows_and_hold_no_token(emulator):
    emulator.config(never_ready=True)
    shapes = {}
    for n in range(24):
        session = create(emulator, f"203.0.113.{n}", "198.51.100.2")
        shapes[session["session_id"]] = shape_of_pending_users(session)
        assert session["authorization_token"] is None
    assert set(shapes.values()) == {"null_token", "no_token", "empty", "absent"}

    # A session keeps its shape: GET and the list answer it the same way until it is ready.
    for session_id, shape in list(shapes.items())[:8]:
        assert shape_of_pending_users(call(emulator, "GET", f"{SESSIONS}/{session_id}").json()) == (
            shape
        )
    listed = call(emulator, "GET", SESSIONS).json()["sessions"]
    assert [shape_of_pending_users(s) for s in listed] == [shapes[s["session_id"]] for s in listed]
    assert all(s["authorization_token"] is None for s in listed)
    users = [user for s in listed for user in s.get("session_users", [])]
    assert all(user.get("authorization_token") is None for user in users)


def test_tokens_are_unsigned_32_bit_and_values_above_2_31_occur(emulator):
    tokens = []
    for _ in range(4):
        session_id = create(emulator, *[f"203.0.113.{n}" for n in range(1, 9)])["session_id"]
        session = wait_until(emulator, session_id, lambda s: s["ready"])
        tokens.append(session["authorization_token"])
        tokens += [user["authorization_token"] for user in session["session_users"]]
    assert all(isinstance(token, int) and 0 < token <= U32_MAX for token in tokens)
    assert any(token >= 2**31 for token in tokens)
    users = session["session_users"]
    assert len({user["authorization_token"] for user in users}) == len(users)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"{}", "users"),
        (b'{"users": []}', "users"),
        (b'{"users": [{"addr": "203.0.113.1"}]}', "users[0].ip"),
        (b'{"users": [{"ip": "203.0.113.1"}, {"ip": "999.1.1.1"}]}', "users[1].ip"),
        (b'{"users": ["203.0.113.1"]}', "users[0].ip"),
        (b'{"users": [{"ip": 3405803777}]}', "users[0].ip"),
        (b'{"users": [{"ip": "203.0.113.1"}], "filters": {"field": "location"}}', "filters"),
        (
            b'{"users": [{"ip": "203.0.113.1"}], '
            b'"filters": [{"field": "location", "values": ["EU"], "filter_type": "some"}]}',
            "filters",
        ),
        (b'{"users": [{"ip": "203.0.113.1"}], "webhook_url": "ftp://x"}', "webhook_url"),
    ],
)
def test_create_refuses_a_bad_body_with_400_and_creates_nothing(emulator, body, message):
    response = call(emulator, "POST", SESSIONS, data=body)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert total_count(emulator) == 0


def test_create_accepts_location_filters(emulator):
    filters = [{"field": "location", "values": ["EU"], "filter_type": "any"}]
    assert create(emulator, "203.0.113.1", filters=filters)["session_id"]


def test_an_unknown_session_is_404(emulator):
    response = call(emulator, "GET", f"{SESSIONS}/000000000000-S")
    assert response.status_code == 404
    assert "message" in response.json()


def test_the_list_is_paginated_and_following_has_next_visits_every_session(emulator):
    emulator.config(page_size=2)
    created = [create(emulator, f"203.0.113.{n}")["session_id"] for n in range(5)]

    seen, pages, path = [], [], SESSIONS
    while path:
        page = call(emulator, "GET", path).json()
        pages.append(page["pagination"])
        assert page["total_count"] == 5
        seen += [session["session_id"] for session in page["sessions"]]
        path = f"{SESSIONS}?page={page['pagination']['next_page_number']}"
        path = path if page["pagination"]["has_next"] else None

    assert seen == created
    assert [p["number"] for p in pages] == [1, 2, 3]
    assert pages[0] == {
        "number": 1,
        "next_page_number": 2,
        "previous_page_number": None,
        "paginator": {"num_pages": 3},
        "has_next": True,
        "has_previous": False,
    }
    assert (pages[2]["has_next"], pages[2]["has_previous"], pages[2]["previous_page_number"]) == (
        False,
        True,
        2,
    )


def test_the_default_page_size_is_10(emulator):
    assert Knobs().page_size == 10
    for n in range(11):
        create(emulator, f"203.0.113.{n}")
    page = call(emulator, "GET", SESSIONS).json()
    assert len(page["sessions"]) == 10
    assert page["pagination"]["has_next"] is True


def test_a_page_past_the_end_is_empty_and_a_bad_page_is_400(emulator):
    create(emulator, "203.0.113.1")
    past = call(emulator, "GET", f"{SESSIONS}?page=4").json()
    assert (past["sessions"], past["pagination"]["has_next"]) == ([], False)
    assert call(emulator, "GET", f"{SESSIONS}?page=0").status_code == 400
    assert call(emulator, "GET", f"{SESSIONS}?page=two").status_code == 400


@pytest.mark.parametrize("answer", [404, 400])
def test_page_past_end_makes_a_page_past_the_end_an_error(emulator, answer):
    emulator.config(page_size=2, page_past_end=str(answer))
    for n in range(3):
        create(emulator, f"203.0.113.{n}")
    assert call(emulator, "GET", f"{SESSIONS}?page=2").status_code == 200  # the last page
    past = call(emulator, "GET", f"{SESSIONS}?page=3")
    assert past.status_code == answer
    assert "page 3" in past.json()["message"]


def test_a_delete_while_paging_shifts_a_session_onto_a_page_already_read(emulator):
    # Offset pagination in creation order, as Edgegap's: absence from a list proves nothing.
    emulator.config(page_size=2)
    ids = [create(emulator, f"203.0.113.{n}")["session_id"] for n in range(5)]
    first = call(emulator, "GET", SESSIONS).json()
    assert [s["session_id"] for s in first["sessions"]] == ids[:2]
    assert call(emulator, "DELETE", f"{SESSIONS}/{ids[0]}").status_code == 204
    second = call(emulator, "GET", f"{SESSIONS}?page=2").json()
    assert [s["session_id"] for s in second["sessions"]] == ids[3:5]
    seen = {s["session_id"] for s in first["sessions"] + second["sessions"]}
    assert ids[2] not in seen  # alive all along, and never listed to this reader
    assert call(emulator, "GET", f"{SESSIONS}/{ids[2]}").status_code == 200
    assert second["pagination"]["has_next"] is False


def test_the_deletion_that_empties_the_last_page_makes_it_a_page_past_the_end(emulator):
    emulator.config(page_size=2, page_past_end="404")
    ids = [create(emulator, f"203.0.113.{n}")["session_id"] for n in range(3)]
    assert call(emulator, "GET", SESSIONS).json()["pagination"]["has_next"] is True
    call(emulator, "DELETE", f"{SESSIONS}/{ids[0]}")
    assert call(emulator, "GET", f"{SESSIONS}?page=2").status_code == 404


def test_sessions_of_another_environment_share_the_list(emulator):
    # The list covers the whole organisation: staging's sessions (marked by their own webhook
    # host) come in the same pages as ours.
    ours = create(emulator, "203.0.113.1", webhook_url="http://127.0.0.1:9/hooks/relays/k1")
    theirs = create(emulator, "203.0.113.2", webhook_url="https://staging.example.test/hooks/x")
    unmarked = create(emulator, "203.0.113.3")
    listed = call(emulator, "GET", SESSIONS).json()["sessions"]
    assert [(s["session_id"], s["webhook_url"]) for s in listed] == [
        (ours["session_id"], ours["webhook_url"]),
        (theirs["session_id"], "https://staging.example.test/hooks/x"),
        (unmarked["session_id"], None),
    ]


def test_delete_answers_204_without_a_body_then_404(emulator):
    session_id = create(emulator, "203.0.113.1")["session_id"]
    deleted = call(emulator, "DELETE", f"{SESSIONS}/{session_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert call(emulator, "GET", f"{SESSIONS}/{session_id}").status_code == 404
    assert call(emulator, "DELETE", f"{SESSIONS}/{session_id}").status_code == 404


def authorize(emulator, session_id, ip):
    return call(
        emulator,
        "POST",
        "/v1/relays/sessions:authorize-user",
        json={"session_id": session_id, "user_ip": ip},
    )


def create_ready(emulator, *ips, **body):
    session_id = create(emulator, *ips, **body)["session_id"]
    return wait_until(emulator, session_id, lambda s: s["ready"])


def test_authorize_user_answers_the_session_with_a_singular_session_user(emulator):
    session = create_ready(emulator, "203.0.113.1")
    response = authorize(emulator, session["session_id"], "198.51.100.7")
    assert response.status_code == 200
    answer = response.json()
    assert "session_users" not in answer
    assert answer["session_id"] == session["session_id"]
    assert answer["authorization_token"] == session["authorization_token"]
    user = answer["session_user"]
    assert user["ip_address"] == "198.51.100.7"
    host_token = session["session_users"][0]["authorization_token"]
    assert user["authorization_token"] not in (host_token, session["authorization_token"])

    users = call(emulator, "GET", f"{SESSIONS}/{session['session_id']}").json()["session_users"]
    assert [u["ip_address"] for u in users] == ["203.0.113.1", "198.51.100.7"]


def test_authorize_user_is_409_while_the_session_is_not_ready(emulator):
    emulator.config(never_ready=True)
    session_id = create(emulator, "203.0.113.1")["session_id"]
    response = authorize(emulator, session_id, "198.51.100.7")
    assert response.status_code == 409
    assert "not ready" in response.json()["message"]
    emulator.config(never_ready=False, error_state="no relay available")
    failed_id = create(emulator, "203.0.113.1")["session_id"]
    wait_until(emulator, failed_id, lambda s: s["error"])
    assert authorize(emulator, failed_id, "198.51.100.7").status_code == 409
    emulator.config(never_ready=True)  # neither session gained a user
    for sid in (session_id, failed_id):
        assert len(call(emulator, "GET", f"{SESSIONS}/{sid}").json().get("session_users", [])) <= 1


def test_authorize_user_checks_its_body_and_the_session(emulator):
    path = "/v1/relays/sessions:authorize-user"
    session_id = create(emulator, "203.0.113.1")["session_id"]
    bad_ip = call(emulator, "POST", path, json={"session_id": session_id, "user_ip": "nope"})
    assert bad_ip.status_code == 400
    no_id = call(emulator, "POST", path, json={"user_ip": "198.51.100.7"})
    assert no_id.status_code == 400
    unknown = call(emulator, "POST", path, json={"session_id": "x-S", "user_ip": "198.51.100.7"})
    assert unknown.status_code == 404


def test_an_ip_may_be_seated_twice_unless_strict(emulator):
    session_id = create_ready(emulator, "8.8.8.8")["session_id"]
    assert authorize(emulator, session_id, "1.1.1.1").status_code == 200
    assert authorize(emulator, session_id, "1.1.1.1").status_code == 200  # two players, one NAT
    emulator.config(strict=True)
    refused = authorize(emulator, session_id, "1.1.1.1")
    assert refused.status_code == 409
    assert "already has this IP" in refused.json()["message"]
    assert authorize(emulator, session_id, "8.8.8.8").status_code == 409  # the host's IP too
    assert authorize(emulator, session_id, "9.9.9.9").status_code == 200


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "10.1.2.3", "192.168.1.20", "100.64.0.1", "169.254.0.9", "203.0.113.5",
           "224.0.0.1", "0.0.0.0", "::1", "fd00::1"],
)  # fmt: skip
def test_strict_refuses_non_public_ips_on_create_and_authorize(emulator, ip):
    session_id = create_ready(emulator, "8.8.8.8")["session_id"]
    emulator.config(strict=True)
    response = call(emulator, "POST", SESSIONS, json={"users": [{"ip": "8.8.4.4"}, {"ip": ip}]})
    assert response.status_code == 400
    assert "users[1].ip must be a public IP address" in response.json()["message"]
    assert authorize(emulator, session_id, ip).status_code == 400
    assert total_count(emulator) == 1


def test_strict_accepts_public_ips_and_loopback_passes_when_not_strict(emulator):
    emulator.config(strict=True)
    create(emulator, "8.8.8.8", "2606:4700:4700::1111")
    emulator.config(strict=False)
    create(emulator, "127.0.0.1", "10.0.0.2")  # the dev stack: every player on loopback
    assert total_count(emulator) == 2


def revoke(emulator, session_id, token):
    return call(
        emulator,
        "POST",
        "/v1/relays/sessions:revoke-user",
        json={"session_id": session_id, "authorization_token": token},
    )


def test_revoke_user_answers_204_without_a_body_and_removes_the_user(emulator):
    session = create_ready(emulator, "203.0.113.1", "198.51.100.2")
    guest = session["session_users"][1]["authorization_token"]
    response = revoke(emulator, session["session_id"], guest)
    assert response.status_code == 204
    assert response.content == b""
    users = call(emulator, "GET", f"{SESSIONS}/{session['session_id']}").json()["session_users"]
    assert [u["ip_address"] for u in users] == ["203.0.113.1"]
    assert revoke(emulator, session["session_id"], guest).status_code == 404


def test_revoke_user_answers_200_with_the_session_when_configured(emulator):
    emulator.config(revoke_answers="200")
    session = create_ready(emulator, "203.0.113.1", "198.51.100.2")
    response = revoke(
        emulator, session["session_id"], session["session_users"][1]["authorization_token"]
    )
    assert response.status_code == 200
    assert response.json()["session_id"] == session["session_id"]
    assert len(response.json()["session_users"]) == 1


@pytest.mark.parametrize("token", [-1, 2**32, "123", True, None])
def test_revoke_user_wants_an_unsigned_32_bit_token(emulator, token):
    session_id = create(emulator, "203.0.113.1")["session_id"]
    assert revoke(emulator, session_id, token).status_code == 400


def test_unknown_paths_are_404_and_wrong_methods_405(emulator):
    assert call(emulator, "GET", "/v1/relays/nope").status_code == 404
    assert call(emulator, "GET", f"{SESSIONS}/x-S/extra").status_code == 404
    assert call(emulator, "PUT", SESSIONS).status_code == 405
    assert call(emulator, "GET", "/v1/relays/sessions:authorize-user").status_code == 405


# --- Webhook ---------------------------------------------------------------------------------


@pytest.fixture
def webhook_receiver():
    received = queue.SimpleQueue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.put(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_the_webhook_is_posted_once_with_the_ready_session(emulator, webhook_receiver):
    url, received = webhook_receiver
    session = create(emulator, "203.0.113.1", webhook_url=url)
    assert session["webhook_url"] == url
    posted = received.get(timeout=3)
    assert posted["session_id"] == session["session_id"]
    assert posted["ready"] is True
    assert posted["relay"]["ports"]["server"]["port"] > 0
    wait_until(emulator, session["session_id"], lambda s: s["ready"])
    time.sleep(0.2)
    assert received.empty()


def test_an_unreachable_webhook_does_not_stop_the_session_from_getting_ready(emulator):
    session = create(emulator, "203.0.113.1", webhook_url="http://127.0.0.1:9/hook")
    wait_until(emulator, session["session_id"], lambda s: s["ready"])


# --- Fault knobs -----------------------------------------------------------------------------


def test_rate_429_answers_429_with_retry_after_and_creates_nothing(emulator):
    emulator.config(rate_429=1.0, retry_after=7)
    response = call(emulator, "POST", SESSIONS, json={"users": [{"ip": "203.0.113.1"}]})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert "message" in response.json()
    emulator.config(rate_429=0.0)
    assert total_count(emulator) == 0


def test_retry_after_none_sends_429_without_the_header(emulator):
    emulator.config(rate_429=1.0, retry_after=None)
    response = call(emulator, "GET", SESSIONS)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_rate_5xx_answers_500_or_503_and_creates_nothing(emulator):
    emulator.config(rate_5xx=1.0)
    statuses = {
        call(emulator, "POST", SESSIONS, json={"users": [{"ip": "203.0.113.1"}]}).status_code
        for _ in range(12)
    }
    assert statuses == {500, 503}
    emulator.config(rate_5xx=0.0)
    assert total_count(emulator) == 0


def test_partial_fault_rates_fail_some_calls_only(emulator):
    emulator.config(rate_429=0.5)
    statuses = [call(emulator, "GET", SESSIONS).status_code for _ in range(40)]
    assert set(statuses) == {200, 429}


def test_slow_delays_the_reply_but_the_session_is_created_anyway(emulator):
    emulator.config(slow=0.5)
    with pytest.raises(requests.Timeout):
        call(emulator, "POST", SESSIONS, json={"users": [{"ip": "203.0.113.1"}]}, timeout=0.1)
    emulator.config(slow=0.0)
    assert total_count(emulator) == 1


def test_slow_rate_delays_only_that_fraction_of_replies(emulator):
    emulator.config(slow=0.3, slow_rate=0.5)
    durations = []
    for _ in range(16):
        started = time.monotonic()
        assert call(emulator, "GET", SESSIONS).status_code == 200
        durations.append(time.monotonic() - started)
    slow = [d for d in durations if d >= 0.3]
    assert 0 < len(slow) < len(durations)
    assert all(d < 0.2 for d in durations if d < 0.3)  # the others are not delayed at all


def test_slow_rate_0_delays_nothing(emulator):
    emulator.config(slow=5.0, slow_rate=0.0)
    assert call(emulator, "GET", SESSIONS, timeout=1).status_code == 200


def lost_answer_errors(emulator, method, path, **kwargs):
    """The exception a client gets from a lost answer; fails the test if an answer arrives."""
    try:
        response = call(emulator, method, path, **kwargs)
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        return exc
    raise AssertionError(f"an answer arrived: {response.status_code} {response.text!r}")


def test_a_lost_create_answer_is_a_connection_error_but_the_session_exists(emulator):
    emulator.config(lose_rate=1.0)
    kinds = set()
    for n in range(12):
        body = {"users": [{"ip": f"203.0.113.{n}"}]}
        error = lost_answer_errors(emulator, "POST", SESSIONS, json=body)
        kinds.add(type(error))
    # Both ways an answer gets lost: the connection closed before any byte of an answer
    # (requests: ConnectionError) or cut off mid-body (ChunkedEncodingError). Never a 500.
    assert kinds == {requests.ConnectionError, requests.exceptions.ChunkedEncodingError}
    emulator.config(lose_rate=0.0)
    assert total_count(emulator) == 12


def test_lost_answers_are_broken_connections_at_the_socket_level(emulator):
    # Below requests: no status line at all, or a status line and a body shorter than announced.
    emulator.config(lose_rate=1.0)
    host, port = emulator.base_url.removeprefix("http://").split(":")
    outcomes = set()
    for _ in range(12):
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", SESSIONS, headers={"Authorization": f"token {TOKEN}"})
        try:
            response = connection.getresponse()
        except http.client.RemoteDisconnected:
            outcomes.add("no answer")
        else:
            assert response.status == 200  # the status of the answer that is being lost
            with pytest.raises(http.client.IncompleteRead):
                response.read()
            outcomes.add("cut off")
        finally:
            connection.close()
    assert outcomes == {"no answer", "cut off"}


def test_a_lost_authorize_answer_still_seats_the_user(emulator):
    session_id = create_ready(emulator, "203.0.113.1")["session_id"]
    emulator.config(lose_rate=1.0)
    lost_answer_errors(
        emulator,
        "POST",
        "/v1/relays/sessions:authorize-user",
        json={"session_id": session_id, "user_ip": "198.51.100.7"},
    )
    lost_answer_errors(emulator, "DELETE", f"{SESSIONS}/000000000000-S")  # a 404 is lost too
    emulator.config(lose_rate=0.0)
    users = call(emulator, "GET", f"{SESSIONS}/{session_id}").json()["session_users"]
    assert [user["ip_address"] for user in users] == ["203.0.113.1", "198.51.100.7"]


def test_a_lost_delete_answer_still_deletes(emulator):
    session_id = create(emulator, "203.0.113.1")["session_id"]
    emulator.config(lose_rate=1.0)
    lost_answer_errors(emulator, "DELETE", f"{SESSIONS}/{session_id}")
    emulator.config(lose_rate=0.0)
    assert call(emulator, "GET", f"{SESSIONS}/{session_id}").status_code == 404


def test_lose_rate_loses_only_that_fraction_and_never_a_fault_answer(emulator):
    emulator.config(lose_rate=0.5)
    outcomes = []
    for _ in range(30):
        try:
            outcomes.append(call(emulator, "GET", SESSIONS).status_code)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            outcomes.append("lost")
    assert set(outcomes) == {200, "lost"}
    # A 429 did no work: it is always delivered, so a lost answer always means work was done.
    emulator.config(lose_rate=1.0, rate_429=1.0)
    assert call(emulator, "GET", SESSIONS).status_code == 429


def test_never_ready_rate_leaves_that_fraction_of_sessions_initializing(emulator):
    emulator.config(never_ready_rate=0.5, ready_delay=0.0)
    ids = [create(emulator, f"203.0.113.{n}")["session_id"] for n in range(20)]
    time.sleep(0.3)
    sessions = [call(emulator, "GET", f"{SESSIONS}/{sid}").json() for sid in ids]
    stuck = [s for s in sessions if not s["ready"]]
    assert 0 < len(stuck) < len(ids)
    assert {(s["status"], s["relay"], s["authorization_token"]) for s in stuck} == {
        ("Initializing", None, None)
    }


def test_faults_never_hit_the_control_endpoints(emulator):
    emulator.config(rate_429=1.0, rate_5xx=1.0, slow=2.0, lose_rate=1.0)
    assert call(emulator, "GET", "/_emulator/config", timeout=1).status_code == 200
    response = call(emulator, "POST", "/_emulator/config", json={"rate_429": 0.0}, timeout=1)
    assert response.status_code == 200


def test_never_ready_sessions_stay_initializing(emulator):
    emulator.config(never_ready=True, ready_delay=0.0)
    session_id = create(emulator, "203.0.113.1")["session_id"]
    time.sleep(0.2)
    session = call(emulator, "GET", f"{SESSIONS}/{session_id}").json()
    assert (session["status"], session["ready"], session["relay"]) == ("Initializing", False, None)


def test_error_state_sessions_fail_with_that_error_and_never_get_ready(emulator):
    emulator.config(error_state="no relay available")
    session_id = create(emulator, "203.0.113.1")["session_id"]
    failed = wait_until(emulator, session_id, lambda s: s["error"])
    assert failed["error"] == "no relay available"
    assert (failed["ready"], failed["relay"]) == (False, None)
    time.sleep(0.1)
    assert call(emulator, "GET", f"{SESSIONS}/{session_id}").json()["ready"] is False


# --- Control endpoints -----------------------------------------------------------------------


def test_config_endpoint_reads_and_changes_the_knobs(emulator):
    knobs = call(emulator, "GET", "/_emulator/config").json()
    assert knobs == {**Knobs().as_dict(), "ready_delay": 0.05, "validation_delay": 0.05}

    assert {
        name: knobs[name]
        for name in (
            "lose_rate", "slow_rate", "never_ready_rate", "host_timeout", "strict", "page_past_end"
        )
    } == {
        "lose_rate": 0.0,
        "slow_rate": 1.0,
        "never_ready_rate": 0.0,
        "host_timeout": None,
        "strict": False,
        "page_past_end": "empty",
    }  # fmt: skip

    changes = {
        "page_size": 3,
        "revoke_answers": "200",
        "lose_rate": 0.3,
        "slow_rate": 0.5,
        "never_ready_rate": 0.25,
        "host_timeout": 2.5,
        "strict": True,
        "page_past_end": "404",
    }
    changed = call(emulator, "POST", "/_emulator/config", json=changes)
    assert changed.status_code == 200
    assert call(emulator, "GET", "/_emulator/config").json() == {**knobs, **changes}
    assert (
        call(emulator, "POST", "/_emulator/config", json={"host_timeout": None}).json()[
            "host_timeout"
        ]
        is None
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rate_429": 1.5}, "rate_429"),
        ({"page_size": 0}, "page_size"),
        ({"slow": -1}, "slow"),
        ({"never_ready": "yes"}, "never_ready"),
        ({"revoke_answers": "201"}, "revoke_answers"),
        ({"error_state": ""}, "error_state"),
        ({"retry_after": 1.5}, "retry_after"),
        ({"lose_rate": -0.1}, "lose_rate"),
        ({"lose_rate": "0.3"}, "lose_rate"),
        ({"slow_rate": 1.01}, "slow_rate"),
        ({"never_ready_rate": 2}, "never_ready_rate"),
        ({"host_timeout": 0}, "host_timeout"),
        ({"host_timeout": "5"}, "host_timeout"),
        ({"strict": 1}, "strict"),
        ({"page_past_end": 404}, "page_past_end"),
        ({"page_past_end": "410"}, "page_past_end"),
        ({"warp_speed": 9}, "unknown knob"),
    ],
)
def test_config_endpoint_refuses_bad_knobs_and_changes_nothing(emulator, changes, message):
    response = call(emulator, "POST", "/_emulator/config", json=changes)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert call(emulator, "GET", "/_emulator/config").json()["page_size"] == 10


def test_reset_endpoint_deletes_every_session(emulator):
    create(emulator, "203.0.113.1")
    create(emulator, "203.0.113.2")
    assert call(emulator, "POST", "/_emulator/reset").status_code == 204
    assert total_count(emulator) == 0


def test_emulator_thread_refuses_bad_knobs_before_starting():
    with pytest.raises(ValueError, match="rate_5xx"):
        EmulatorThread(token=TOKEN, rate_5xx=2)


# --- The management command ------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def start_command(*flags):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "relay_emulator", "--port", "0", "--token", TOKEN, *flags],
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_command_sets_every_new_knob_from_its_flags():
    process = start_command(
        "--lose-rate", "0.3", "--slow", "2", "--slow-rate", "0.25", "--never-ready-rate", "0.2",
        "--host-timeout", "4.5", "--strict", "--page-past-end", "404",
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert "relay emulator listening on http://127.0.0.1:" in line, process.stderr.read()
        base_url = line.split(" on ")[1].strip()
        knobs = requests.get(
            f"{base_url}/_emulator/config", headers={"Authorization": f"token {TOKEN}"}, timeout=5
        ).json()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert {
        name: knobs[name]
        for name in (
            "lose_rate", "slow", "slow_rate", "never_ready_rate", "host_timeout", "strict",
            "page_past_end",
        )
    } == {
        "lose_rate": 0.3, "slow": 2.0, "slow_rate": 0.25, "never_ready_rate": 0.2,
        "host_timeout": 4.5, "strict": True, "page_past_end": "404",
    }  # fmt: skip


def test_the_command_refuses_a_bad_knob_and_names_it():
    process = start_command("--lose-rate", "1.5")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "lose_rate must be a number from 0 to 1" in stderr
