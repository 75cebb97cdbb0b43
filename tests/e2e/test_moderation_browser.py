"""Lobby chat and moderation end to end (issue 15), on Debian's Chromium against the live stack
(uvicorn, the Celery workers, the relay emulator, Redis): two players chat in a room and each sees
the other's line live, HTML typed in a message shows as the text it is; one reports the other and
mutes them (their lines stop reaching the muter); an operator bans the reported player from the
report in the admin; the banned player's page says until when and why, and rejoining is refused.
Screenshots land in test-artifacts/browser/. Any console error fails the test (test_browser's rule).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_admin_browser import sign_in
from tests.e2e.test_browser import PHONE, READY, assert_no_browser_errors

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HTML_LINE = "<b>x</b> & <img src=nope onerror=alert(1)>"
UNTIL = r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC"


def say(player, text: str) -> None:
    player.page.get_by_label("Message").fill(text)
    player.page.get_by_label("Message").press("Enter")


def chat_line(player, text: str):
    return player.page.locator("#chat-log li").filter(has_text=text)


def test_players_chat_one_reports_and_mutes_the_other_who_is_banned_and_cannot_rejoin(
    operator_account, worker_tasks, players, shots
):
    ada, bob = players("Ada"), players("Bob", PHONE)
    ada.play_as_guest(shots)
    code = ada.create_lobby(name="Chat night", visibility="private")
    bob.play_as_guest(shots)
    bob.join_by_code(code)
    expect(ada.member("Bob")).to_be_visible()
    for player in (ada, bob):
        expect(player.page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()

    # Each sees the other's line live, without a reload.
    say(ada, "hi Bob, map?")
    expect(chat_line(bob, "hi Bob, map?")).to_contain_text("Ada:")
    say(bob, HTML_LINE)
    line = chat_line(ada, "<b>x</b>")
    expect(line).to_contain_text("Bob:")
    # Shown as typed: the markup is text, no element was made from it (and no alert ran).
    expect(line.locator(".chat__text")).to_have_text(HTML_LINE)
    assert line.locator("b, img").count() == 0
    expect(chat_line(bob, "<b>x</b>").locator(".chat__text")).to_have_text(HTML_LINE)
    shots.take(ada, "chat-html-as-text")
    shots.take(bob, "chat-html-as-text")

    # Ada reports Bob from his line: the reason from the list, a note.
    line.get_by_role("button", name="Report Bob").click()
    dialog = ada.page.get_by_role("dialog", name="Report Bob")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason").select_option("harassment")
    dialog.get_by_label("Note (optional)").fill("keeps posting markup at me")
    shots.take(ada, "report-dialog")
    dialog.get_by_role("button", name="Send report").click()
    expect(dialog).to_be_hidden()
    expect(ada.page.locator("#chat-notice")).to_contain_text("your report")

    # ... and mutes him: his lines leave her page, and new ones never reach it.
    chat_line(ada, "<b>x</b>").get_by_role("button", name="Mute Bob").click()
    expect(chat_line(ada, "<b>x</b>")).to_have_count(0)
    say(bob, "can you still hear me")
    expect(chat_line(bob, "can you still hear me")).to_be_visible()  # sent: Bob's page has it
    # The stream is ordered per player: once Ada sees Bob's later "ready", an earlier message
    # event would have been shown already. It is not there.
    bob.page.get_by_role("button", name=READY).click()
    expect(ada.member("Bob")).to_contain_text("Ready")
    expect(chat_line(ada, "can you still hear me")).to_have_count(0)
    ada.page.reload()  # nor in the last messages a page loads
    expect(chat_line(ada, "hi Bob, map?")).to_be_visible()
    expect(ada.page.locator("#chat-log li").filter(has_text="Bob:")).to_have_count(0)
    shots.take(ada, "bob-muted")
    say(ada, "still here?")  # Bob did not mute Ada: he still hears her
    expect(chat_line(bob, "still here?")).to_be_visible()

    # The operator works the report queue: the evidence is text, the ban is given from the report.
    operator = players("Operator")
    page = sign_in(operator, shots)
    page.goto("/admin/moderation/report/")
    row = page.locator("#result_list tbody tr").filter(has_text="Bob")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Open")
    row.locator("th a").click()
    evidence = page.locator("table.members")
    expect(evidence).to_contain_text(HTML_LINE)
    assert evidence.locator("b, img").count() == 0
    expect(page.locator(".field-note")).to_contain_text("keeps posting markup at me")
    page.get_by_label("Ban Bob for").select_option("24h")
    page.get_by_label("Reason").fill("Harassing other players in chat")
    shots.take(operator, "report-ban-form")
    page.get_by_role("button", name="Ban the reported player").click()
    expect(page.locator(".messagelist")).to_contain_text(
        re.compile(rf"Bob is banned {UNTIL}; report resolved\.")
    )
    shots.take(operator, "report-banned")

    # Bob's page says so, until when and why; Ada's room goes on without him.
    expect(bob.page.get_by_role("heading", name="You are banned")).to_be_visible()
    expect(bob.page.locator("#ended-text")).to_have_text(
        re.compile(rf"^You are banned {UNTIL}\. Reason: Harassing other players in chat$")
    )
    expect(bob.page.get_by_label("Message")).to_be_hidden()
    shots.take(bob, "banned")
    expect(ada.page.locator("#members li")).to_have_count(1)

    # He cannot come back: the join is refused with the same words.
    bob.page.get_by_role("link", name="Back to lobbies").click()
    expect(bob.page).to_have_url(re.compile(r"/lobbies/$"))
    bob.expect_refusal(403, "/api/v1/lobbies/join")
    bob.join_by_code(code)
    expect(bob.page.locator("#join-form").get_by_role("alert")).to_have_text(
        re.compile(rf"^You are banned {UNTIL}\. Reason: Harassing other players in chat$")
    )
    expect(bob.page).to_have_url(re.compile(r"/lobbies/$"))
    shots.take(bob, "rejoin-refused")

    # Bob's page in the admin: his report, the ban in force, his messages; the operator makes it
    # for good from there (that page's own ban form).
    page.goto("/admin/moderation/report/")
    row = page.locator("#result_list tbody tr").filter(has_text="Bob")
    row.get_by_role("link", name="Bob").click()
    expect(page.locator("#ban-state")).to_contain_text(re.compile(rf"Banned {UNTIL}"))
    expect(page.locator("body")).to_contain_text("can you still hear me")
    page.get_by_label("Ban for").select_option("forever")
    page.locator("#player-ban-form").get_by_label("Reason").fill("Came back to harass again")
    page.get_by_role("button", name="Ban this player").click()
    expect(page.locator(".messagelist")).to_contain_text("Bob is banned for good.")
    expect(page.locator("#ban-state")).to_contain_text("Banned for good")
    shots.take(operator, "player-banned-for-good")
    bob.expect_refusal(403, "/api/v1/lobbies/join")
    bob.join_by_code(code)
    expect(bob.page.locator("#join-form").get_by_role("alert")).to_have_text(
        re.compile(r"^You are banned for good\. Reason: ")
    )
    assert_no_browser_errors(ada, bob, operator)
