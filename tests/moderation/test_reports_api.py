"""Reports (issue 15): a member reports another with a reason from the list, an optional note and
the lobby's recent messages attached as evidence."""

import pytest

from lobby import services as lobby_services
from moderation.models import Report
from moderation.services import chat_post
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


def report(client, lobby, **body):
    return client.post(f"/api/v1/lobbies/{lobby.pk}/reports", body, format="json")


def error(response):
    return response.status_code, response.json()["error"]["code"]


def test_a_report_carries_the_reason_note_and_recent_messages(client_for, lobby_of):
    host, rude = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, rude)
    for n in range(25):
        chat_post(lobby_id=lobby.pk, player=rude if n % 2 else host, text=f"line {n}")

    response = report(
        client_for(host), lobby, player_id=rude.pk, reason="harassment", note=" kept insulting "
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["player_id"], body["reason"], body["status"]) == (rude.pk, "harassment", "open")
    assert body["evidence_messages"] == 20
    saved = Report.objects.get()
    assert (saved.reporter, saved.reported, saved.lobby, saved.note) == (
        host,
        rude,
        lobby,
        "kept insulting",
    )
    assert [m["text"] for m in saved.evidence] == [f"line {n}" for n in range(5, 25)]
    assert saved.evidence[-1]["sender_id"] == host.pk


def test_reports_stay_after_the_messages_are_gone(client_for, lobby_of):
    host, rude = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, rude)
    chat_post(lobby_id=lobby.pk, player=rude, text="evidence")
    report(client_for(host), lobby, player_id=rude.pk, reason="hate")

    lobby.chat_messages.all().delete()

    assert Report.objects.get().evidence[0]["text"] == "evidence"


def test_report_rules(client_for, lobby_of):
    host, rude, outsider = PlayerFactory(), PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, rude)
    private = lobby_of(PlayerFactory(), visibility="private")
    mine = client_for(host)

    assert error(report(mine, lobby, player_id=rude.pk, reason="rude")) == (400, "invalid")
    assert error(report(mine, lobby, player_id=host.pk, reason="spam")) == (
        400,
        "cannot_report_self",
    )
    assert error(report(mine, lobby, player_id=outsider.pk, reason="spam")) == (
        404,
        "target_not_in_lobby",
    )
    assert error(report(client_for(outsider), lobby, player_id=rude.pk, reason="spam")) == (
        403,
        "not_a_member",
    )
    assert error(
        report(client_for(outsider), private, player_id=private.host_id, reason="spam")
    ) == (404, "lobby_not_found")
    long_note = report(mine, lobby, player_id=rude.pk, reason="spam", note="x" * 1001)
    assert error(long_note) == (400, "invalid")
    assert report(mine, lobby, player_id=rude.pk, reason="spam").status_code == 201
    assert error(report(mine, lobby, player_id=rude.pk, reason="hate")) == (
        409,
        "already_reported",
    )
    assert Report.objects.count() == 1


def test_a_player_who_left_or_was_kicked_may_still_report(client_for, lobby_of):
    host, rude = PlayerFactory(), PlayerFactory()
    lobby = lobby_of(host, rude)
    lobby_services.lobby_kick(lobby_id=lobby.pk, player=host, target_id=rude.pk)

    # The kicked player reports the host, and the host reports the kicked player.
    assert report(client_for(rude), lobby, player_id=host.pk, reason="other").status_code == 201
    assert report(client_for(host), lobby, player_id=rude.pk, reason="spam").status_code == 201


def test_reports_are_throttled_per_player(client_for, lobby_of, throttle_rates):
    throttle_rates(report="2/hour")
    host = PlayerFactory()
    others = [PlayerFactory() for _ in range(3)]
    lobby = lobby_of(host, *others)
    mine = client_for(host)

    statuses = [report(mine, lobby, player_id=o.pk, reason="spam").status_code for o in others]

    assert statuses == [201, 201, 429]
