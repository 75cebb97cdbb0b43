"""The browser UI end to end: Debian's Chromium, driven by Playwright, against the live stack
(uvicorn, a Celery worker, the relay emulator, Redis). Each player is its own browser context,
so its own session cookie. A screenshot of every step lands in test-artifacts/browser/.

Every page's console errors and uncaught exceptions are collected, and a test fails on any.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect, sync_playwright

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Live processes share this machine with the test run: a little more patience than 5 s.
expect.set_options(timeout=10_000)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
ROOM_URL = re.compile(r"/lobbies/[0-9a-f-]{36}/$")
# "Within a few seconds": the emulator makes a relay ready in 0.3 s, the rest is our stack.
ASSIGNMENT_WITHIN_MS = 10_000
LIVE_UPDATE_MS = 10_000  # the lobby list is polled every 4 s
READY = "I\u2019m ready"  # the ready toggle, with a typographic apostrophe


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's browser is Debian's Chromium: a browser is never downloaded."""
    if not Path(CHROMIUM).exists():
        # `make test` on a machine with only Python: said, not hidden. CI must run them.
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": browser_type_launch_args.get("headless", True),  # --headed to watch
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


# pytest-playwright keeps one Playwright for the whole session. While Playwright's sync API is
# alive, its event loop counts as running on this thread (playwright/_impl/_greenlets.py), and
# Django then refuses the database work pytest-django does after each test (this module's and
# every later one's). So the tests here get a Playwright and a browser of their own, stopped
# before their database is flushed. Launching Chromium takes well under a second.
@pytest.fixture
def playwright():
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def browser_type(playwright, browser_name):
    return getattr(playwright, browser_name)


@pytest.fixture
def browser(browser_type, browser_type_launch_args):
    browser = browser_type.launch(**browser_type_launch_args)
    yield browser
    browser.close()


class Shots:
    """Numbered screenshots of one test's steps."""

    def __init__(self, name: str):
        self.folder = ARTIFACTS / name
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def take(self, player: BrowserPlayer, step: str) -> None:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{player.name.lower()}-{step}.png"
        player.page.screenshot(path=str(path), full_page=True)


@pytest.fixture
def shots(request):
    return Shots(request.node.originalname.removeprefix("test_"))


class BrowserPlayer:
    """One person at one browser: a context of its own (cookies), one tab."""

    def __init__(self, browser: Browser, base_url: str, name: str, viewport=DESKTOP):
        self.name = name
        self.context = browser.new_context(
            base_url=base_url,
            viewport=viewport,
            is_mobile=viewport is PHONE,
            has_touch=viewport is PHONE,
            permissions=["clipboard-read", "clipboard-write"],
        )
        self.context.set_default_timeout(10_000)
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.expected_refusals: list[tuple[int, str]] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message) -> None:
        if message.type != "error":
            return
        # Chromium logs every 4xx answer as a console error, also one the page expects and
        # explains (a refused join). Those are declared by the test, one by one; anything
        # else is a problem.
        refused = re.match(r"Failed to load resource: .* status of (\d+)", message.text)
        if refused:
            seen = (int(refused.group(1)), urlsplit(message.location.get("url", "")).path)
            if seen in self.expected_refusals:
                self.expected_refusals.remove(seen)
                return
        self.problems.append(f"console error: {message.text} at {message.location}")

    def expect_refusal(self, status: int, path: str) -> None:
        """The next answer `status` from `path` is part of the scenario, not an error."""
        self.expected_refusals.append((status, path))

    def close(self) -> None:
        self.context.close()

    # --- steps -------------------------------------------------------------------------------

    def play_as_guest(self, shots: Shots) -> None:
        self.page.goto("/")
        expect(self.page.get_by_role("heading", name="Play together")).to_be_visible()
        self.page.get_by_label("Display name").fill(self.name)
        shots.take(self, "entry")
        self.page.get_by_role("button", name="Play as guest").click()
        expect(self.page).to_have_url(re.compile(r"/lobbies/$"))
        expect(self.page.get_by_role("heading", name="Open lobbies")).to_be_visible()
        expect(self.page.locator("#list-summary")).not_to_have_text("Loading lobbies…")
        expect(self.page.get_by_role("banner")).to_contain_text(self.name)

    def create_lobby(self, *, name, visibility, mode="", region="", max_players=4) -> str:
        form = self.page.locator("#create-form")
        form.get_by_label("Lobby name").fill(name)
        form.get_by_label("Max players").fill(str(max_players))
        form.get_by_label("Mode").fill(mode)
        form.get_by_label("Region").fill(region)
        form.get_by_role("radio", name=re.compile(visibility, re.I)).check()
        form.get_by_role("button", name="Create lobby").click()
        expect(self.page).to_have_url(ROOM_URL)
        expect(self.page.get_by_role("heading", level=1)).to_have_text(name)
        code = self.page.locator("#join-code")
        expect(code).to_have_text(re.compile(r"^[2-9A-Z]{8}$"))
        return code.inner_text()

    def join_by_code(self, code: str) -> None:
        self.page.get_by_role("textbox", name="Join code").fill(code.lower())  # typed any which way
        self.page.locator("#join-form").get_by_role("button", name="Join").click()

    def status(self):
        return self.page.locator("#status-live")

    def member(self, name: str):
        return self.page.locator("#members li").filter(has_text=name)

    def confirm(self, button: str) -> None:
        dialog = self.page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name=button).click()
        expect(dialog).to_be_hidden()

    def assignment_by_api(self) -> dict:
        """The same player's assignment from REST (the context shares the page's cookie)."""
        response = self.context.request.get("/api/v1/players/me/assignment")
        assert response.ok, response.text()
        return response.json()


@pytest.fixture
def players(browser, worker_tasks):
    made: list[BrowserPlayer] = []

    def make(name: str, viewport=DESKTOP) -> BrowserPlayer:
        player = BrowserPlayer(browser, worker_tasks.base_url, name, viewport)
        made.append(player)
        return player

    yield make
    for player in made:
        for problem in player.problems:  # when a test failed first: a clue to why
            print(f"{player.name}: {problem}")
        player.close()


def assert_no_browser_errors(*people: BrowserPlayer) -> None:
    problems = [f"{person.name}: {problem}" for person in people for problem in person.problems]
    assert not problems, "the browser reported errors:\n" + "\n".join(problems)
    unused = [(person.name, person.expected_refusals) for person in people]
    assert all(not refusals for _, refusals in unused), f"expected refusals not seen: {unused}"


@pytest.fixture
def account(django_user_model):
    """A signed-up player (made before any browser starts: see the `playwright` fixture)."""
    django_user_model.objects.create_user("marie", password="a-long-password-1")
    return "marie", "a-long-password-1"


def _no_secrets_on(page: Page, live) -> None:
    html = page.content()
    assert live.env["EDGEGAP_API_TOKEN"] not in html
    assert "canary-" not in html


def test_two_players_meet_in_a_private_lobby_get_their_relay_and_the_host_ends_it(
    worker_tasks, players, shots
):
    live = worker_tasks
    ada, grace = players("Ada"), players("Grace", PHONE)

    ada.play_as_guest(shots)
    shots.take(ada, "browser")
    code = ada.create_lobby(name="Friday night", visibility="private", mode="ctf", region="eu")
    expect(ada.status()).to_contain_text("Waiting for players")
    expect(ada.member("Ada")).to_contain_text("Host")
    ada.page.get_by_role("button", name="Copy code").click()
    expect(ada.page.locator("#join-code-box")).to_contain_text("Copied")
    assert ada.page.evaluate("navigator.clipboard.readText()") == code
    expect(ada.page.locator("#connection")).to_have_text("Live")
    shots.take(ada, "private-lobby-created")

    grace.play_as_guest(shots)
    expect(grace.page.get_by_text("Friday night")).to_have_count(0)  # private: not listed
    grace.join_by_code(code)
    expect(grace.page).to_have_url(ada.page.url)
    expect(grace.member("Ada")).to_contain_text("Host")
    expect(grace.member("Grace")).to_contain_text("(you)")
    expect(grace.page.get_by_role("button", name="Start match")).to_be_hidden()  # host only
    shots.take(grace, "joined-by-code")

    # Ada's page learns of Grace over its socket, without a reload.
    expect(ada.member("Grace")).to_contain_text("Not ready")
    expect(ada.status()).to_contain_text("Waiting until you and Grace get ready")
    expect(ada.page.get_by_role("button", name="Start match")).to_be_disabled()
    shots.take(ada, "waiting-for-readiness")

    ready = grace.page.get_by_role("button", name=READY)
    ready.focus()
    grace.page.keyboard.press("Space")
    expect(ready).to_have_attribute("aria-pressed", "true")
    expect(ada.member("Grace")).to_contain_text("Ready")
    expect(ada.status()).to_contain_text("Waiting until you get ready")
    ada.page.get_by_role("button", name=READY).click()
    expect(ada.status()).to_contain_text("Everyone is ready")
    expect(grace.status()).to_contain_text("Waiting for Ada (the host) to start the match")
    shots.take(grace, "everyone-ready")
    shots.take(ada, "everyone-ready")

    started = time.monotonic()
    ada.page.get_by_role("button", name="Start match").click()
    expect(ada.page.locator("#as-role")).to_have_text("Server", timeout=ASSIGNMENT_WITHIN_MS)
    expect(grace.page.locator("#as-role")).to_have_text("Client", timeout=ASSIGNMENT_WITHIN_MS)
    took = time.monotonic() - started
    assert took < ASSIGNMENT_WITHIN_MS / 1000, f"assignments took {took:.1f} s"
    expect(ada.status()).to_contain_text("Your relay is ready")
    expect(grace.status()).to_contain_text("You are a client")
    shots.take(ada, "assignment-server")
    shots.take(grace, "assignment-client")

    # Each page shows exactly its player's own assignment, and nobody else's token.
    mine = {player.name: player.assignment_by_api() for player in (ada, grace)}
    for player in (ada, grace):
        own = mine[player.name]
        page = player.page
        expect(page.locator("#as-ip")).to_have_text(own["relay"]["ip"])
        expect(page.locator("#as-port")).to_have_text(str(own["relay"]["port"]))
        expect(page.locator("#as-session-token")).to_have_text(
            str(own["session_authorization_token"])
        )
        expect(page.locator("#as-user-token")).to_have_text(str(own["user_authorization_token"]))
        other = mine["Grace" if player is ada else "Ada"]
        assert str(other["user_authorization_token"]) not in page.content()
        _no_secrets_on(page, live)
    assert mine["Ada"]["role"] == "server" and mine["Grace"]["role"] == "client"
    assert mine["Ada"]["relay"]["port"] != mine["Grace"]["relay"]["port"]
    grace.page.reload()  # a page opened later shows the same assignment
    expect(grace.page.locator("#as-user-token")).to_have_text(
        str(mine["Grace"]["user_authorization_token"])
    )
    grace.page.get_by_text("How a game client uses this").click()
    expect(grace.page.get_by_text("GET /api/v1/players/me/assignment")).to_be_visible()
    shots.take(grace, "how-a-game-client-uses-it")

    ada.page.get_by_role("button", name="End lobby").click()
    shots.take(ada, "confirm-end")
    ada.confirm("End lobby")
    expect(ada.page.get_by_role("heading", name="You ended the lobby")).to_be_visible()
    expect(grace.page.get_by_role("heading", name="The host ended the lobby")).to_be_visible()
    shots.take(ada, "ended")
    shots.take(grace, "closed")
    grace.page.get_by_role("link", name="Back to lobbies").click()
    expect(grace.page).to_have_url(re.compile(r"/lobbies/$"))
    assert_no_browser_errors(ada, grace)


def test_the_host_kicks_a_player_who_then_cannot_rejoin(worker_tasks, players, shots):
    ada, bob = players("Ada"), players("Bob", PHONE)
    bob.play_as_guest(shots)
    expect(bob.page.locator("#list-empty")).to_be_visible()
    shots.take(bob, "no-lobbies-yet")

    ada.play_as_guest(shots)
    code = ada.create_lobby(name="Duel at dawn", visibility="public", mode="duel", region="us")

    # Bob's list shows the new lobby without a reload, and its filters narrow it.
    lobby = bob.page.locator("#lobby-list li").filter(has_text="Duel at dawn")
    expect(lobby).to_be_visible(timeout=LIVE_UPDATE_MS)
    expect(lobby).to_contain_text("1/4")
    filters = bob.page.get_by_role("search", name="Filter lobbies")
    filters.get_by_label("Mode").fill("ctf")
    expect(bob.page.locator("#list-empty")).to_be_visible()
    expect(bob.page).to_have_url(re.compile(r"\?mode=ctf$"))
    shots.take(bob, "filtered-out")
    filters.get_by_role("button", name="Clear").click()
    filters.get_by_label("Search").fill("dawn")
    expect(lobby).to_be_visible()
    shots.take(bob, "public-lobby-listed")
    lobby.get_by_role("button", name="Join").click()
    expect(bob.page).to_have_url(ada.page.url)

    expect(ada.member("Bob")).to_be_visible()
    shots.take(ada, "bob-joined")
    # By keyboard: the confirmation opens on "Cancel"; Escape backs out, focus comes back.
    kick = ada.page.get_by_role("button", name="Kick Bob")
    kick.focus()
    ada.page.keyboard.press("Enter")
    dialog = ada.page.get_by_role("dialog", name="Kick Bob?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    shots.take(ada, "confirm-kick")
    ada.page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(kick).to_be_focused()
    ada.page.keyboard.press("Enter")
    ada.page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Kick")).to_be_focused()
    ada.page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(ada.page.locator("#members li")).to_have_count(1)
    expect(ada.status()).to_contain_text("Waiting for players")

    expect(bob.page.get_by_role("heading", name="You were removed from the lobby")).to_be_visible()
    expect(bob.page.locator("#ended")).to_contain_text("you can rejoin it after a cooldown")
    shots.take(bob, "kicked")
    shots.take(ada, "after-kick")

    bob.page.get_by_role("link", name="Back to lobbies").click()
    expect(bob.page).to_have_url(re.compile(r"/lobbies/$"))
    bob.expect_refusal(403, "/api/v1/lobbies/join")
    bob.join_by_code(code)
    # The server's words, with the end of the kick cooldown (LOBBY_KICK_COOLDOWN).
    expect(bob.page.locator("#join-form").get_by_role("alert")).to_have_text(
        re.compile(
            r"^The host removed you from this lobby; you can join it again after"
            r" \d\d:\d\d:\d\d UTC\.$"
        )
    )
    expect(bob.page).to_have_url(re.compile(r"/lobbies/$"))
    shots.take(bob, "rejoin-refused")
    assert_no_browser_errors(ada, bob)


def test_a_player_whose_socket_fails_keeps_up_by_polling(worker_tasks, players, shots):
    ada, cy = players("Ada"), players("Cy", PHONE)
    sockets: list[WebSocketRoute] = []
    urls: list[str] = []
    refuse = {"sockets": False}

    def route(ws: WebSocketRoute) -> None:
        urls.append(ws.url)
        if refuse["sockets"]:
            ws.close()  # accepted, then dropped at once: a proxy that does not pass sockets
        else:
            ws.connect_to_server()
            sockets.append(ws)

    cy.page.route_web_socket(re.compile(r"/ws/v1/events"), route)
    polls: list[str] = []
    cy.page.on(
        "request",
        lambda request: polls.append(request.url) if "/players/me/events" in request.url else None,
    )

    ada.play_as_guest(shots)
    code = ada.create_lobby(name="Shaky wifi", visibility="private")
    cy.play_as_guest(shots)
    cy.join_by_code(code)
    expect(cy.page.locator("#connection")).to_have_text("Live")
    first_after = int(re.search(r"after=(\d+)", urls[0]).group(1))

    # The socket drops; every new one fails too. The page reconnects from the last event it
    # saw, then falls back to long-polling the event stream.
    ada.page.get_by_role("button", name=READY).click()
    expect(cy.member("Ada")).to_contain_text("Ready")
    refuse["sockets"] = True
    sockets[-1].close()
    expect(cy.page.locator("#connection")).to_have_text("Live (polling)", timeout=15_000)
    shots.take(cy, "polling")
    resumed = [int(re.search(r"after=(\d+)", url).group(1)) for url in urls[1:]]
    assert resumed and all(after > first_after for after in resumed), urls

    cy.page.get_by_role("button", name=READY).click()
    expect(ada.status()).to_contain_text("Everyone is ready")
    ada.page.get_by_role("button", name="Start match").click()
    expect(cy.page.locator("#as-role")).to_have_text("Client", timeout=ASSIGNMENT_WITHIN_MS)
    expect(ada.page.locator("#as-role")).to_have_text("Server", timeout=ASSIGNMENT_WITHIN_MS)
    shots.take(cy, "assignment-by-polling")
    assert any("wait=25" in url for url in polls), polls
    assert_no_browser_errors(ada, cy)


def test_the_relay_fails_with_its_reason_and_a_new_host_starts_again(worker_tasks, players, shots):
    live = worker_tasks
    # Slow enough to see the allocation, and failing: Edgegap has no relay for us.
    live.emulator_config(ready_delay=2.0, error_state="no relay available near the players")
    ada, dee = players("Ada"), players("Dee", PHONE)
    ada.play_as_guest(shots)
    code = ada.create_lobby(name="Unlucky", visibility="private")
    dee.play_as_guest(shots)
    dee.join_by_code(code)
    for player in (dee, ada):
        player.page.get_by_role("button", name=READY).click()
    expect(ada.status()).to_contain_text("Everyone is ready")

    ada.page.get_by_role("button", name="Start match").click()
    for player in (ada, dee):
        expect(player.status()).to_contain_text("Allocating a relay")
        expect(player.page.get_by_role("progressbar", name="Allocating a relay")).to_be_visible()
    shots.take(dee, "allocating")
    shots.take(ada, "allocating")

    reason = "The relay reported an error: no relay available near the players."
    expect(ada.status()).to_contain_text("The relay could not be set up")
    expect(ada.status()).to_contain_text(reason)
    expect(dee.status()).to_contain_text(reason)
    expect(dee.status()).to_contain_text("Waiting for Ada (the host) to start again")
    expect(dee.page.get_by_role("button", name="Start again")).to_be_hidden()
    expect(ada.page.locator("#assignment")).to_be_hidden()
    shots.take(ada, "failed")
    shots.take(dee, "failed")

    # The host hands over before retrying: the new host is the relay's server.
    ada.page.get_by_role("button", name="Make Dee the host").click()
    expect(dee.member("Dee")).to_contain_text("Host")
    expect(ada.status()).to_contain_text("Waiting for Dee (the host) to start again")
    expect(ada.page.get_by_role("button", name="Start again")).to_be_hidden()
    live.emulator_config(ready_delay=0.3, error_state=None)
    dee.page.get_by_role("button", name="Start again").click()
    expect(dee.page.locator("#as-role")).to_have_text("Server", timeout=ASSIGNMENT_WITHIN_MS)
    expect(ada.page.locator("#as-role")).to_have_text("Client", timeout=ASSIGNMENT_WITHIN_MS)
    shots.take(dee, "ready-after-retry")
    assert_no_browser_errors(ada, dee)


def test_a_player_with_an_account_signs_in_and_out(worker_tasks, account, players, shots):
    username, password = account
    marie = players("Marie", PHONE)
    marie.page.goto("/lobbies/")
    expect(marie.page).to_have_url(re.compile(r"/\?next=/lobbies/$"))  # sign in first
    marie.page.get_by_role("link", name="Sign in").click()
    expect(marie.page.get_by_role("heading", name="Sign in")).to_be_visible()
    marie.page.get_by_label("Username").fill(username)
    marie.page.get_by_label("Password").fill("not-the-password")
    marie.page.get_by_role("button", name="Sign in").click()
    expect(marie.page.get_by_role("alert")).to_contain_text("correct username and password")
    shots.take(marie, "wrong-password")
    marie.page.get_by_label("Password").fill(password)
    marie.page.get_by_role("button", name="Sign in").click()
    expect(marie.page).to_have_url(re.compile(r"/lobbies/$"))
    expect(marie.page.get_by_role("banner")).to_contain_text(username)
    expect(marie.page.locator("#list-summary")).not_to_have_text("Loading lobbies…")
    shots.take(marie, "signed-in")
    marie.page.get_by_role("button", name="Sign out").click()
    expect(marie.page.get_by_role("heading", name="Play together")).to_be_visible()
    assert_no_browser_errors(marie)
