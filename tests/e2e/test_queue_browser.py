"""The queue page end to end (issue 6): players choose a queue, enter their attributes, follow
their ticket live, and land in the lobby room of their match, on Debian's Chromium against the
live stack. The fixtures, the players and the screenshots (test-artifacts/browser/<test>/) are
test_browser.py's; so is the rule that any console error fails a test.

The live stack has no beat: while players wait for a match, a thread here queues the matcher's
pass (`matchmaking.run`) every half second, as beat does every second.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import expect

from lobby.models import Player
from matchmaking.models import Profile, Ticket
from matchmaking.rules import EXAMPLE_RULES
from ratings.models import Leaderboard, Rating
from tests.e2e.test_browser import (
    ASSIGNMENT_WITHIN_MS,
    DESKTOP,
    PHONE,
    ROOM_URL,
    BrowserPlayer,
    assert_no_browser_errors,
)

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TICKETS = "/api/v1/matchmaking/tickets"
DUEL_RULES = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
        },
        "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
    }
}
# Every rule type, with the guide's expansions sped up: looser after 2 s, then after 4 s.
SQUAD_RULES = {
    "initial": EXAMPLE_RULES["initial"],
    "expansions": {"2": EXAMPLE_RULES["expansions"]["30"], "4": EXAMPLE_RULES["expansions"]["60"]},
}
NEXT_FRAMES = (
    "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
)
MATCH_WITHIN_MS = 20_000  # passes every 0.5 s, then the relay (0.3 s in the emulator)
EXPLAINED_WITHIN_MS = 10_000  # a pass, then the page's next GET (every 3 s)


@pytest.fixture
def queues():
    """Two queues, made before any browser starts (see test_browser's `playwright` fixture)."""
    duel = Profile.objects.create(
        name="duel",
        title="Duel 1v1",
        description="One on one, skill within 100.",
        rules=DUEL_RULES,
        mode="duel",
    )
    squad = Profile.objects.create(
        name="squad", title="Squad 2v2", rules=SQUAD_RULES, mode="ctf", ticket_ttl=8
    )
    return {"duel": duel, "squad": squad}


def in_thread(work):
    """Database work while Playwright runs: on a thread of its own, whose event loop is not
    Playwright's (Django refuses sync database calls where an event loop runs)."""

    def run():
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@contextmanager
def matcher_running(live, every: float = 0.5):
    """What beat does in production: a matcher pass queued every `every` seconds."""
    stop = threading.Event()

    def run():
        while not stop.is_set():
            live.enqueue("matchmaking.run")
            stop.wait(every)

    thread = threading.Thread(target=run, name="matcher-beat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def open_queue(player: BrowserPlayer, shots) -> None:
    player.play_as_guest(shots)
    player.page.get_by_role("navigation", name="Main").get_by_role("link", name="Queue").click()
    expect(player.page).to_have_url(re.compile(r"/queue/$"))
    expect(player.page.get_by_role("heading", name="Find a match", level=1)).to_be_visible()
    expect(player.page.locator("#profiles-summary")).to_have_text("2 queues open.")
    link = player.page.get_by_role("link", name="Queue")
    expect(link).to_have_attribute("aria-current", "page")


def ticket(player: BrowserPlayer):
    return player.page.locator("#ticket")


def find_a_match(player: BrowserPlayer, queue: str, **fields) -> None:
    page = player.page
    page.get_by_role("radio", name=queue).check()
    for name, value in fields.items():
        page.get_by_label(name, exact=True).fill(str(value))
    page.get_by_role("button", name="Find a match").click()


def test_two_players_queue_and_land_in_the_same_lobby_room_with_their_relay(
    worker_tasks, queues, players, shots
):
    live = worker_tasks
    ada, grace = players("Ada"), players("Grace", PHONE)

    open_queue(ada, shots)
    expect(ada.page.get_by_role("radio", name="Duel 1v1")).to_be_checked()  # the first queue
    duel = ada.page.locator("label.choice").filter(has_text="Duel 1v1")
    expect(duel).to_contain_text("1v1")
    expect(duel).to_contain_text("2 teams of 1 player. One on one, skill within 100.")
    skill = ada.page.get_by_label("Skill", exact=True)
    expect(skill).to_have_attribute("type", "number")
    expect(ada.page.locator("#rules-card")).to_contain_text("Skill within 100 of each other")
    shots.take(ada, "queue-page")

    find_a_match(ada, "Duel 1v1", Skill=1000)
    card = ticket(ada)
    expect(card.get_by_role("heading", name="Looking for a match")).to_be_focused()
    expect(card).to_contain_text("In Duel 1v1 (1v1)")
    expect(card).to_contain_text("Skill: 1000")
    expect(ada.page.locator("#ticket-step")).to_have_text(
        "This queue\u2019s rules stay the same while you wait."
    )
    expect(ada.page.locator("#connection")).to_have_text("Live")
    expect(ada.page.locator("#queue-form")).to_be_hidden()
    shots.take(ada, "searching")

    # One pass: the ticket explains itself, and the page reads it without a reload.
    live.enqueue("matchmaking.run")
    blocked = ada.page.locator("#ticket-blocked")
    expect(blocked).to_contain_text("More players", timeout=EXPLAINED_WITHIN_MS)
    expect(blocked).to_contain_text("No other player searching (found 0).")
    expect(ada.page.locator("#ticket-waited")).not_to_have_text("0:00")
    shots.take(ada, "searching-explained")

    open_queue(grace, shots)
    find_a_match(grace, "Duel 1v1", Skill=1050)
    expect(ticket(grace)).to_contain_text("Looking for a match")
    shots.take(grace, "searching")

    # The match forms; each page follows its ticket to the lobby room, and the room shows the
    # relay assignment: the older ticket hosts.
    with matcher_running(live):
        expect(ada.page).to_have_url(ROOM_URL, timeout=MATCH_WITHIN_MS)
        expect(grace.page).to_have_url(ROOM_URL, timeout=MATCH_WITHIN_MS)
        assert ada.page.url == grace.page.url
        expect(ada.page.locator("#as-role")).to_have_text("Server", timeout=ASSIGNMENT_WITHIN_MS)
        expect(grace.page.locator("#as-role")).to_have_text("Client", timeout=ASSIGNMENT_WITHIN_MS)
    for player in (ada, grace):
        expect(player.page.get_by_role("heading", level=1)).to_have_text("Duel 1v1 match")
        expect(player.page.locator("#members li")).to_have_count(2)
        own = player.assignment_by_api()
        expect(player.page.locator("#as-port")).to_have_text(str(own["relay"]["port"]))
    expect(grace.status()).to_contain_text("You are a client")
    shots.take(ada, "in-the-room-server")
    shots.take(grace, "in-the-room-client")

    # Back on the queue page, a player in a lobby is told to leave it first.
    ada.page.get_by_role("link", name="Queue").click()
    expect(ada.page.get_by_role("status")).to_contain_text("Leave it before you queue")
    shots.take(ada, "queue-while-in-a-lobby")
    assert_no_browser_errors(ada, grace)


def test_a_bad_attribute_is_refused_in_plain_words_and_a_search_resumes_and_cancels(
    worker_tasks, queues, players, shots
):
    bo = players("Bo", PHONE)
    # A link to the queue works before choosing a name: the entry page comes first.
    bo.page.goto("/queue/")
    expect(bo.page).to_have_url(re.compile(r"/\?next=/queue/$"))
    bo.page.get_by_label("Display name").fill("Bo")
    bo.page.get_by_role("button", name="Play as guest").click()
    expect(bo.page).to_have_url(re.compile(r"/queue/$"))
    expect(bo.page.locator("#profiles-summary")).to_have_text("2 queues open.")

    # Empty: the API refuses it, and says so next to the input, in plain words.
    bo.expect_refusal(400, TICKETS)
    find_a_match(bo, "Duel 1v1")
    skill = bo.page.get_by_label("Skill", exact=True)
    expect(bo.page.get_by_text("Enter a number, like 1500.")).to_be_visible()
    expect(skill).to_have_accessible_description(re.compile(r"Enter a number, like 1500\.$"))
    expect(skill).to_have_attribute("aria-invalid", "true")
    expect(skill).to_be_focused()
    expect(bo.page.locator("#queue-error")).to_have_text("Check the highlighted details.")
    expect(ticket(bo)).to_be_hidden()
    assert in_thread(lambda: Ticket.objects.count()) == 0
    shots.take(bo, "skill-refused")

    # Not a number: the input cannot hold text, and the page says the same without a request.
    skill.fill("")
    skill.press_sequentially("1e")
    bo.page.get_by_role("button", name="Find a match").click()
    expect(skill).to_have_accessible_description(re.compile(r"Enter a number, like 1500\.$"))
    assert in_thread(lambda: Ticket.objects.count()) == 0

    skill.fill("1200")
    bo.page.get_by_role("button", name="Find a match").click()
    expect(ticket(bo)).to_contain_text("Looking for a match")
    expect(bo.page.get_by_text("Enter a number, like 1500.")).to_have_count(0)
    ticket_id = in_thread(lambda: str(Ticket.objects.get().pk))

    # A reload resumes the same search.
    bo.page.reload()
    expect(ticket(bo)).to_contain_text("Looking for a match")
    expect(ticket(bo)).to_contain_text("Skill: 1200")
    assert ticket_id in bo.page.evaluate("Object.values(sessionStorage)")
    shots.take(bo, "resumed-after-reload")

    bo.page.get_by_role("button", name="Cancel search").click()
    expect(ticket(bo).get_by_role("heading", name="You left the queue")).to_be_focused()
    expect(bo.page.locator("#ticket-badge")).to_have_text("Cancelled")
    assert in_thread(lambda: Ticket.objects.get().status) == "cancelled"
    shots.take(bo, "cancelled")

    bo.page.get_by_role("button", name="Queue again").click()
    expect(bo.page.get_by_label("Skill", exact=True)).to_have_value("1200")  # kept
    expect(bo.page.get_by_label("Skill", exact=True)).to_be_focused()
    expect(ticket(bo)).to_be_hidden()
    shots.take(bo, "queue-again")
    assert_no_browser_errors(bo)


def test_every_rule_type_has_its_input_and_a_search_made_elsewhere_is_picked_up(
    worker_tasks, queues, players, shots
):
    live = worker_tasks
    cy = players("Cy")
    open_queue(cy, shots)
    page = cy.page

    page.get_by_role("radio", name="Squad 2v2").check()
    expect(page.get_by_label("Mode", exact=True)).to_have_attribute("type", "text")
    expect(page.get_by_label("Skill", exact=True)).to_have_attribute("type", "number")
    expect(page.get_by_label("Maps", exact=True)).to_have_attribute(
        "placeholder", "e.g. harbor, dust"
    )
    beacons = page.get_by_role("group", name="Beacons")
    expect(beacons.get_by_label("Region 1", exact=True)).to_have_value("eu-west")
    expect(beacons.get_by_label("Ping (ms) for region 1")).to_have_value("40")
    expect(beacons.get_by_label("Region 2", exact=True)).to_have_value("us-east")
    beacons.get_by_role("button", name="Add a region").click()
    expect(beacons.get_by_label("Region 3", exact=True)).to_be_focused()
    beacons.get_by_label("Region 3", exact=True).fill("eu-central")
    expect(page.locator("#rules-steps > li")).to_have_count(3)
    expect(page.locator("#rules-card")).to_contain_text("After 2 s of waiting")
    shots.take(cy, "squad-form")
    page.set_viewport_size(PHONE)
    page.evaluate(NEXT_FRAMES)  # laid out again before the picture
    shots.take(cy, "squad-form-phone")
    page.set_viewport_size(DESKTOP)

    # Several problems at once, each next to its own input.
    cy.expect_refusal(400, TICKETS)
    page.get_by_label("Mode", exact=True).fill("ctf")
    page.get_by_label("Skill", exact=True).fill("1500")
    page.get_by_role("button", name="Find a match").click()
    expect(page.get_by_label("Maps", exact=True)).to_have_accessible_description(
        re.compile(r"Enter at least one value; separate values with commas\.$")
    )
    expect(beacons).to_have_accessible_description(
        re.compile(r"Give eu-central a ping of 0 ms or more\.$")
    )
    expect(beacons.get_by_label("Ping (ms) for region 3")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Maps", exact=True)).to_be_focused()
    shots.take(cy, "squad-refused")
    beacons.get_by_role("button", name="Remove region 3").click()
    page.get_by_label("Maps", exact=True).fill("harbor, dust")

    # Meanwhile Cy queues in the duel elsewhere (a game client): no event reaches this page.
    def queue_elsewhere():
        player = Player.objects.get(display_name="Cy")
        return Ticket.objects.create(
            profile=queues["duel"],
            player=player,
            attributes={"skill": 900},
            members=[{"player_id": player.pk, "ip": "127.0.0.1"}],
            expires_at=timezone.now() + timedelta(minutes=5),
        ).pk

    in_thread(queue_elsewhere)
    cy.expect_refusal(409, TICKETS)
    page.get_by_role("button", name="Find a match").click()
    card = ticket(cy)
    expect(card).to_contain_text("Looking for a match")
    expect(card).to_contain_text("In Duel 1v1 (1v1)")
    expect(page.locator("#ticket-note")).to_contain_text("You were already searching in Duel 1v1")
    expect(page.locator("input[name=profile][value=duel]")).to_be_checked()  # for "Queue again"
    shots.take(cy, "already-queued-elsewhere")

    page.get_by_role("button", name="Cancel search").click()
    expect(card.get_by_role("heading", name="You left the queue")).to_be_visible()

    # Back to the squad, with what was typed: the rules loosen while Cy waits, then the search
    # expires (8 s), each change on the page as it happens.
    page.get_by_role("button", name="Queue again").click()
    page.get_by_role("radio", name="Squad 2v2").check()
    expect(page.get_by_label("Maps", exact=True)).to_have_value("harbor, dust")
    page.get_by_role("button", name="Find a match").click()
    expect(card).to_contain_text("In Squad 2v2 (2v2)")
    expect(card).to_contain_text("Beacons: eu-west 40 ms, us-east 110 ms")
    step = page.locator("#ticket-step")
    expect(step).to_contain_text("Step 1 of 3: the starting rules.")
    current = page.locator("#rules-steps > li[aria-current=step]")
    with matcher_running(live):
        expect(step).to_contain_text("Step 2 of 3: looser rules, after 2 s.")
        expect(current).to_contain_text("Skill within 250 (was 100)")
        expect(page.locator("#ticket-blocked")).to_contain_text("More players")
        shots.take(cy, "rules-loosened")
        expect(step).to_contain_text("Step 3 of 3: looser rules, after 4 s. These are the loosest")
        expect(current).to_contain_text("Teams may be smaller")
        expect(card.get_by_role("heading", name="No match this time")).to_be_visible(
            timeout=EXPLAINED_WITHIN_MS
        )
    expect(card).to_contain_text("Nobody fit your search in Squad 2v2 within 8 s.")
    expect(page.locator("#ticket-badge")).to_have_text("Expired")
    expect(page.get_by_role("button", name="Queue again")).to_be_visible()
    shots.take(cy, "expired")

    # A search started in another tab shows up here by the event stream.
    started = page.evaluate(
        """async () => {
            const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const response = await fetch("/api/v1/matchmaking/tickets", {
                method: "POST",
                headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
                body: JSON.stringify({profile: "duel", attributes: {skill: 1300}}),
            });
            return (await response.json()).id;
        }"""
    )
    expect(card).to_contain_text("Skill: 1300")
    expect(card.get_by_role("heading", name="Looking for a match")).to_be_visible()
    assert page.evaluate("Object.values(sessionStorage)").count(started) == 1
    shots.take(cy, "picked-up-from-another-tab")
    assert_no_browser_errors(cy)


RATED_DUEL_RULES = {
    "initial": {
        "match_size": DUEL_RULES["initial"]["match_size"],
        "skill": {
            "type": "number_difference",
            "rating": "ranked-duel",
            "attributes": {"max_difference": 1000},
        },
    }
}


@pytest.fixture
def rated_queue():
    """A duel that takes skill from the ranked-duel leaderboard (made before any browser)."""
    Profile.objects.create(
        name="ranked-duel", title="Ranked duel", rules=RATED_DUEL_RULES, mode="duel"
    )
    return Leaderboard.objects.create(name="ranked-duel", title="Ranked duel")


def test_a_rated_queue_shows_the_players_rating_asks_no_skill_and_still_matches(
    worker_tasks, rated_queue, players, shots
):
    live = worker_tasks
    ada, grace = players("Ada"), players("Grace", PHONE)
    ada.play_as_guest(shots)

    def rate_ada():
        Rating.objects.create(
            leaderboard=rated_queue,
            player=Player.objects.get(display_name="Ada"),
            mu=1700.0,
            sigma=200.0,
            ordinal=1100.0,
            games=4,
        )

    in_thread(rate_ada)
    ada.page.get_by_role("navigation", name="Main").get_by_role("link", name="Queue").click()
    expect(ada.page.locator("#profiles-summary")).to_have_text("1 queue open.")
    skill = ada.page.get_by_role("group", name="Skill")
    expect(skill).to_contain_text("Rating 1100")
    expect(skill).to_contain_text("μ 1700 ± 200")
    expect(skill).to_contain_text("4 games")
    expect(skill).to_have_accessible_description(re.compile(r"^Taken from your rating, not typed"))
    expect(ada.page.locator("#attribute-fields input")).to_have_count(0)
    expect(ada.page.locator("#rules-card")).to_contain_text(
        "Skill within 1000 of each other (from ratings)"
    )
    shots.take(ada, "rated-queue")

    # The rating links to its leaderboard, where Ada's row stands out.
    skill.get_by_role("link", name="See Ranked duel").click()
    expect(ada.page).to_have_url(re.compile(r"/leaderboards/ranked-duel/$"))
    expect(ada.page.get_by_role("heading", name="Ranked duel", level=1)).to_be_visible()
    expect(ada.page.locator("#me")).to_contain_text("Ada")
    expect(ada.page.locator("#me")).to_contain_text("1100")
    shots.take(ada, "leaderboard")
    ada.page.get_by_role("navigation", name="Main").get_by_role("link", name="Queue").click()

    # No input, so nothing the server owns is sent: the server fills it from the rating.
    ada.page.get_by_role("button", name="Find a match").click()
    expect(ticket(ada)).to_contain_text("Looking for a match")
    expect(ticket(ada)).to_contain_text("Skill: 1700 (from ranked-duel ratings)")
    expect(ticket(ada)).not_to_contain_text("$rated")

    grace.play_as_guest(shots)
    grace.page.get_by_role("link", name="Queue").click()
    new = grace.page.get_by_role("group", name="Skill")
    expect(new).to_contain_text("New player: rating 0")
    expect(new).to_contain_text("μ 1500 ± 500")
    expect(new).to_contain_text("no games yet")
    shots.take(grace, "rated-queue-new-player")
    grace.page.get_by_role("button", name="Find a match").click()
    expect(ticket(grace)).to_contain_text("Skill: 1500 (from ranked-duel ratings)")

    with matcher_running(live):
        expect(ada.page).to_have_url(ROOM_URL, timeout=MATCH_WITHIN_MS)
        expect(grace.page).to_have_url(ROOM_URL, timeout=MATCH_WITHIN_MS)
    skills = in_thread(
        lambda: sorted(t.attributes["skill"] for t in Ticket.objects.filter(status="matched"))
    )
    assert skills == [1500.0, 1700.0]
    assert_no_browser_errors(ada, grace)
