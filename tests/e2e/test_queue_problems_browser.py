"""The queue page words attribute problems from their codes (the API's `problems`), on Debian's
Chromium against the live stack: a number the server has just started taking from ratings makes
the page load the queue's rules again, and a region listed twice is caught before any request.
The fixtures and helpers are test_browser.py's and test_queue_browser.py's."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from matchmaking.models import Profile, Ticket
from tests.e2e.test_browser import assert_no_browser_errors
from tests.e2e.test_queue_browser import (
    DUEL_RULES,
    SQUAD_RULES,
    TICKETS,
    find_a_match,
    in_thread,
    open_queue,
)

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RATED_DUEL_RULES = {
    "initial": {
        **DUEL_RULES["initial"],
        "skill": {
            "type": "number_difference",
            "rating": "ranked-duel",
            "attributes": {"max_difference": 100},
        },
    }
}


@pytest.fixture
def queues():
    """The two queues of test_queue_browser, made before any browser starts."""
    Profile.objects.create(name="duel", title="Duel 1v1", rules=DUEL_RULES, mode="duel")
    Profile.objects.create(name="squad", title="Squad 2v2", rules=SQUAD_RULES, mode="ctf")


def test_a_number_that_became_rated_reloads_the_rules_and_a_region_twice_is_caught_here(
    worker_tasks, queues, players, shots
):
    cy = players("Cy")
    open_queue(cy, shots)
    page = cy.page

    # The operator makes the duel rated while Cy's page still asks for a skill.
    page.get_by_role("radio", name="Duel 1v1").check()
    expect(page.get_by_label("Skill", exact=True)).to_be_visible()
    in_thread(lambda: Profile.objects.filter(name="duel").update(rules=RATED_DUEL_RULES))
    cy.expect_refusal(400, TICKETS)
    find_a_match(cy, "Duel 1v1", Skill=1500)
    expect(page.locator("#queue-error")).to_contain_text("rules have just changed")
    expect(page.get_by_role("group", name="Skill")).to_contain_text("From your ranked-duel rating")
    expect(page.locator("#attribute-fields input")).to_have_count(0)
    expect(page.locator(".field-error:visible")).to_have_count(0)
    shots.take(cy, "rules-reloaded")

    # A region twice: the page's own check, worded like the server's problems.
    page.get_by_role("radio", name="Squad 2v2").check()
    beacons = page.get_by_role("group", name="Beacons")
    beacons.get_by_label("Region 2", exact=True).fill("eu-west")
    page.get_by_role("button", name="Find a match").click()
    expect(beacons).to_have_accessible_description(
        re.compile(r"List each region once: eu-west is there twice\.$")
    )
    assert in_thread(lambda: Ticket.objects.count()) == 0
    assert_no_browser_errors(cy)
