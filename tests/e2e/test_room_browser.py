"""The lobby room's rough edges (issue 13), on Debian's Chromium against the live stack: every
Copy button says "Copied" (and copies), joins, leaves and host changes show briefly to everyone,
the last player's leave dialog says the lobby closes, and a lobby an operator ended is explained
in words, never a reason code. Any console error fails a test (test_browser's rule).
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.test_admin_browser import sign_in
from tests.e2e.test_browser import ASSIGNMENT_WITHIN_MS, PHONE, READY, assert_no_browser_errors

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_every_copy_button_copies_news_is_shown_and_an_operator_end_is_in_words(
    operator_account, worker_tasks, players, shots
):
    ada, grace = players("Ada"), players("Grace", PHONE)
    ada.play_as_guest(shots)
    code = ada.create_lobby(name="Copy night", visibility="private")

    # The last (only) player's leave dialog says what leaving does.
    ada.page.get_by_role("button", name="Leave lobby").click()
    dialog = ada.page.get_by_role("dialog")
    expect(dialog).to_contain_text("You are the last player here: leaving closes the lobby.")
    expect(dialog).not_to_contain_text("join again later")
    shots.take(ada, "leave-as-last-player")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    grace.play_as_guest(shots)
    grace.join_by_code(code)
    news = ada.page.locator("#room-news")
    expect(news).to_be_visible()  # shown, not only said to screen readers
    expect(news).to_have_text("Grace joined.")
    shots.take(ada, "news-grace-joined")
    expect(news).to_be_hidden(timeout=10_000)  # briefly

    for player in (grace, ada):
        player.page.get_by_role("button", name=READY).click()
    ada.page.get_by_role("button", name="Start match").click()
    expect(grace.page.locator("#as-role")).to_have_text("Client", timeout=ASSIGNMENT_WITHIN_MS)

    # Every Copy button on the page says "Copied", and the clipboard holds what it names.
    own = grace.assignment_by_api()
    # Located by attribute, which a click does not change (the label does).
    copies = grace.page.locator("#room button[data-copy], #room #copy-assignment")
    labels = copies.all_inner_texts()
    assert labels.count("Copy") == 4 and "Copy everything as JSON" in labels, labels
    clicked = 0
    for index in range(copies.count()):
        button = copies.nth(index)
        if not button.is_visible():
            continue
        button.click()
        expect(button).to_have_text("Copied")
        clicked += 1
    assert clicked >= 5, clicked
    assert json.loads(grace.page.evaluate("navigator.clipboard.readText()")) == own
    shots.take(grace, "copied-everything")

    # An operator ends it: both players read why, in words.
    operator = players("Operator")
    page = sign_in(operator, shots)
    page.goto("/admin/lobby/lobby/")
    page.get_by_role("link", name="Copy night").click()
    page.once("dialog", lambda confirm: confirm.accept())
    page.get_by_role("button", name="End lobby").click()
    expect(page.locator(".messagelist")).to_contain_text("1 lobby(ies) ended")
    for player in (ada, grace):
        expect(player.page.get_by_role("heading", name="This lobby was closed")).to_be_visible()
        expect(player.page.locator("#room")).to_contain_text("operator ended it")
        expect(player.page.locator("#room")).not_to_contain_text("ended_by_operator")
    shots.take(grace, "ended-by-operator")
    assert_no_browser_errors(ada, grace, operator)
