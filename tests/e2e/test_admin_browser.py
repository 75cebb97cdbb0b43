"""The operator's admin end to end (issue 13), on Debian's Chromium against the live stack
(uvicorn, the Celery workers, the relay emulator, Redis): add a profile from the example, retry a
failed allocation, delete a session at Edgegap, reconcile now, end a lobby. Players are game
clients on the HTTP API; after every admin action the test checks what they were told and that no
lobby is left `ready` without a live relay session. Screenshots land in test-artifacts/browser/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from lobby.models import Lobby
from matchmaking.models import Profile
from matchmaking.rules import EXAMPLE_RULES
from relays.edgegap import SessionNotFound
from relays.models import RelaySession
from tests.e2e.players import Transcript, gather_lobby
from tests.e2e.test_browser import BrowserPlayer, assert_no_browser_errors
from tests.e2e.test_queue_browser import in_thread
from tests.live import wait_until

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPERATOR = ("operator", "an-operator-password-1")
RELAY_WITHIN = 20  # seconds: a worker, the emulator (ready in 0.3 s), and this busy machine


@pytest.fixture
def operator_account(django_user_model):
    """A superuser, made before any browser starts (see test_browser's `playwright` fixture)."""
    django_user_model.objects.create_superuser(OPERATOR[0], password=OPERATOR[1])
    return OPERATOR


def sign_in(operator: BrowserPlayer, shots) -> Page:
    page = operator.page
    page.goto("/admin/")
    page.get_by_label("Username").fill(OPERATOR[0])
    page.get_by_label("Password").fill(OPERATOR[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_have_text("Relay lobby operations")
    expect(page.get_by_role("heading", name="Lobbies, queues and relay sessions")).to_be_visible()
    shots.take(operator, "admin-index")
    return page


def run_action(page: Page, row_value: str, action: str) -> None:
    """Tick one row of a change list and run one of its actions."""
    page.locator(f'input[name="_selected_action"][value="{row_value}"]').check()
    page.locator('select[name="action"]').select_option(action)
    page.get_by_title("Run the selected action").click()


def no_ready_lobby_without_a_live_session(live) -> bool:
    """The invariant: a lobby its players see `ready` has a ready session Edgegap still has."""
    ready = in_thread(
        lambda: list(
            Lobby.objects.filter(state=Lobby.State.READY).values_list(
                "relay_session__status", "relay_session__session_id"
            )
        )
    )
    with live.edgegap() as edgegap:
        for status, session_id in ready:
            if status != RelaySession.Status.READY or not session_id:
                return False
            try:
                edgegap.get_session(session_id)
            except SessionNotFound:
                return False
    return True


def lobby_row(lobby_id: str) -> dict:
    return in_thread(
        lambda: (
            Lobby.objects.filter(pk=lobby_id)
            .values("state", "failure_reason", "closed_reason", "relay_session_id")
            .get()
        )
    )


def test_an_operator_adds_a_profile_from_the_example(operator_account, players, shots):
    operator = players("Operator")
    page = sign_in(operator, shots)
    page.get_by_role("link", name="Overview").first.click()
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    expect(page.get_by_text("add a matchmaking profile")).to_be_visible()
    shots.take(operator, "overview-empty")

    page.get_by_role("link", name="add a matchmaking profile").click()
    expect(page.get_by_role("heading", name="Add profile")).to_be_visible()
    check = page.locator(".rules-check")
    expect(check).to_have_text(re.compile("JSON is well formed"))
    shots.take(operator, "profile-add-with-the-example")

    page.get_by_label("Name").fill("squad")
    page.get_by_label("Title").fill("Squad 2v2")
    editor = page.locator("#id_rules")
    # Rules that are JSON but wrong: the server says where, above the editor.
    editor.fill('{"initial": {"skill": {"type": "number_difference"}}}')
    expect(check).to_have_text(re.compile("JSON is well formed"))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errorlist")).to_contain_text(
        "rules.initial.skill.attributes.max_difference is required"
    )
    # Not JSON at all: said as you type.
    editor.fill('{"initial": ')
    expect(check).to_have_text(re.compile("Not valid yet"))
    shots.take(operator, "profile-rules-refused")

    page.once("dialog", lambda dialog: dialog.accept())  # "Replace the rules ...?"
    page.get_by_role("button", name="Use the example rules").click()
    expect(check).to_have_text(re.compile("JSON is well formed"))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.get_by_role("link", name="squad", exact=True)).to_be_visible()
    shots.take(operator, "profile-list")
    saved = in_thread(lambda: Profile.objects.values("title", "rules", "enabled").get())
    assert saved == {"title": "Squad 2v2", "rules": EXAMPLE_RULES, "enabled": True}
    assert_no_browser_errors(operator)


def test_an_operator_retries_deletes_at_edgegap_reconciles_and_ends_a_live_lobby(
    operator_account, worker_tasks, players, shots
):
    live = worker_tasks
    host, (guest,), lobby = gather_lobby(live.base_url, Transcript(), players=2)
    lobby_id = lobby["id"]

    def lobby_state(state):
        return lambda: host.call("GET", f"/api/v1/lobbies/{lobby_id}")["state"] == state

    def settled():
        wait_until(
            lambda: no_ready_lobby_without_a_live_session(live),
            "no lobby ready without a live relay session",
            live,
            timeout=RELAY_WITHIN,
        )

    # An allocation that fails: Edgegap answers with an error state.
    live.emulator_config(error_state="no relay available in this region")
    host.call("POST", f"/api/v1/lobbies/{lobby_id}/start")
    wait_until(lobby_state("failed"), "the allocation to fail", live, timeout=RELAY_WITHIN)

    operator = players("Operator")
    page = sign_in(operator, shots)
    page.get_by_role("link", name="Lobbies", exact=True).first.click()
    rows = page.locator("#result_list tbody tr")
    expect(rows.first).to_contain_text("e2e match")  # newest first
    expect(rows.first).to_contain_text("failed")
    expect(rows.first).to_contain_text("2 / 2")
    shots.take(operator, "lobby-list")

    # 1. Retry the failed allocation from the lobby's page.
    rows.first.get_by_role("link", name="e2e match").click()
    members = page.locator(".field-members table.members")  # members by name, host marked
    expect(members.locator("tr", has_text="player-0")).to_contain_text("(host)")
    expect(members.locator("tr", has_text="player-1")).to_contain_text("active")
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.locator(".field-failure_reason")).to_contain_text("no relay available")
    shots.take(operator, "lobby-failed")
    live.emulator_config(error_state=None)
    page.get_by_role("button", name="Retry relay allocation").click()
    expect(page.locator(".messagelist")).to_contain_text("allocating a new relay session")
    wait_until(lobby_state("ready"), "the retried allocation", live, timeout=RELAY_WITHIN)
    page.reload()
    expect(page.locator(".field-state")).to_contain_text(re.compile("ready", re.I))
    expect(page.get_by_role("button", name="Retry relay allocation")).to_have_count(0)
    shots.take(operator, "lobby-ready-after-retry")
    settled()

    # 2. Delete its session at Edgegap: the lobby fails with the reason, the players are told.
    first_session = lobby_row(lobby_id)["relay_session_id"]
    page.goto("/admin/relays/relaysession/")
    expect(page.locator("#changelist-form")).not_to_contain_text("Delete selected")
    run_action(page, str(first_session), "delete_at_edgegap")
    expect(page.locator(".messagelist")).to_contain_text("1 session(s) closing")
    shots.take(operator, "relay-deleted-at-edgegap")
    guest.poll_until(  # the earlier failure is in the stream too: this one names the operator
        lambda e: (
            e["type"] == "lobby.updated"
            and e["data"]["state"] == "failed"
            and "closed by an operator" in e["data"].get("failure_reason", "")
        )
    )
    settled()
    with live.edgegap() as edgegap:
        wait_until(
            lambda: not edgegap.list_sessions().sessions, "the session gone at Edgegap", live
        )

    # 3. Retry again (from the list this time), then lose the session behind our back: only
    # reconciliation can notice, and "Reconcile now" needs no selected row.
    page.goto("/admin/lobby/lobby/")
    run_action(page, lobby_id, "retry_relay_allocation")
    expect(page.locator(".messagelist")).to_contain_text("1 lobby(ies) allocating")
    wait_until(lobby_state("ready"), "the second retry", live, timeout=RELAY_WITHIN)
    lost = in_thread(lambda: Lobby.objects.get(pk=lobby_id).relay_session.session_id)
    with live.edgegap() as edgegap:
        edgegap.delete_session(lost)
    assert not no_ready_lobby_without_a_live_session(live)  # the check can fail
    page.goto("/admin/relays/relaysession/")
    page.get_by_role("button", name="Reconcile now").click()
    expect(page.locator(".messagelist")).to_contain_text("Reconciliation queued")
    wait_until(lobby_state("failed"), "reconciliation to find the lost session", live)
    assert "no longer exists at Edgegap" in lobby_row(lobby_id)["failure_reason"]
    settled()
    page.goto("/admin/overview/")
    expect(page.get_by_role("heading", name=re.compile("Allocations failed"))).to_be_visible()
    expect(page.locator("#content-main")).to_contain_text("no relay available in this region")
    shots.take(operator, "overview")

    # 4. Retry once more, then end the lobby from its page: closed, players told in words the
    # room shows, and nothing left at Edgegap.
    page.goto(f"/admin/lobby/lobby/{lobby_id}/change/")
    page.get_by_role("button", name="Retry relay allocation").click()
    wait_until(lobby_state("ready"), "the third retry", live, timeout=RELAY_WITHIN)
    page.reload()
    page.once("dialog", lambda dialog: dialog.accept())  # "End this lobby?"
    page.get_by_role("button", name="End lobby").click()
    expect(page.locator(".messagelist")).to_contain_text("1 lobby(ies) ended")
    expect(page.locator(".field-closed_reason")).to_contain_text("ended_by_operator")
    expect(page.get_by_role("button", name="End lobby")).to_have_count(0)
    shots.take(operator, "lobby-ended")
    closed = guest.poll_until(lambda e: e["type"] == "lobby.closed")
    assert closed["data"]["reason"] == "ended_by_operator"
    assert lobby_row(lobby_id)["state"] == "closed"
    settled()
    with live.edgegap() as edgegap:
        wait_until(lambda: not edgegap.list_sessions().sessions, "no session left", live)
    assert_no_browser_errors(operator)
