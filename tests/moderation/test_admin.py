"""The moderation desk in the admin: the report queue and its actions, the one page per player,
bans and lifts, and the audit log (read only) of every operator action."""

from datetime import timedelta

import pytest
from django.urls import reverse

from lobby.models import Lobby, Membership
from moderation import services
from moderation.models import AuditEntry, Ban
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def reported(lobby_of):
    host, rude = PlayerFactory(display_name="Host"), PlayerFactory(display_name="Rude")
    lobby = lobby_of(host, rude)
    services.chat_post(lobby_id=lobby.pk, player=rude, text="<img src=x onerror=alert(1)>")
    report = services.report_create(
        lobby_id=lobby.pk, reporter=host, target_id=rude.pk, reason="harassment", note="mean"
    )
    return report


def test_the_report_queue_lists_open_reports_and_shows_evidence_as_text(desk, reported):
    listing = desk.get(reverse("admin:moderation_report_changelist"))
    page = desk.get(reverse("admin:moderation_report_change", args=[reported.pk]))

    assert listing.status_code == 200 and b"Rude" in listing.content
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x" not in html
    assert 'id="report-ban-form"' in html


def test_banning_from_a_report_bans_resolves_removes_and_is_audited(desk, reported, operator):
    response = desk.post(
        reverse("admin:moderation_report_ban", args=[reported.pk]),
        {"duration": "7d", "reason": "Harassment in chat"},
    )

    assert response.status_code == 302
    ban = Ban.objects.get()
    assert (ban.player, ban.reason, ban.created_by, ban.report) == (
        reported.reported,
        "Harassment in chat",
        operator,
        reported,
    )
    assert abs(ban.expires_at - ban.created_at - timedelta(days=7)) < timedelta(seconds=5)
    reported.refresh_from_db()
    assert (reported.status, reported.handled_by) == ("resolved", operator)
    membership = Membership.objects.get(player=reported.reported)
    assert membership.state == Membership.State.LEFT
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {"ban", "report.resolve"}
    # The report page no longer offers actions.
    page = desk.get(reverse("admin:moderation_report_change", args=[reported.pk]))
    assert b'id="report-ban-form"' not in page.content


def test_a_ban_without_a_reason_is_refused(desk, reported):
    desk.post(reverse("admin:moderation_report_ban", args=[reported.pk]), {"duration": "1h"})

    assert not Ban.objects.exists()
    reported.refresh_from_db()
    assert reported.status == "open"


def test_dismissing_a_report_is_audited(desk, reported):
    desk.post(reverse("admin:moderation_report_dismiss", args=[reported.pk]), {"note": "banter"})

    reported.refresh_from_db()
    assert (reported.status, reported.resolution) == ("dismissed", "banter")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.reason, entry.actor_name) == ("report.dismiss", "banter", "opal")


def test_a_players_page_shows_reports_bans_and_messages_and_bans_for_good(desk, reported):
    rude = reported.reported
    page_url = reverse("admin:moderation_playermoderation_change", args=[rude.pk])

    desk.post(
        reverse("admin:moderation_player_ban", args=[rude.pk]),
        {"duration": "forever", "reason": "Repeat offender"},
    )
    html = desk.get(page_url).content.decode()

    assert "Banned for good" in html and "Repeat offender" in html
    assert "Harassment or bullying" in html  # the report against them
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # their messages, as text
    ban = Ban.objects.get()
    desk.post(reverse("admin:moderation_player_lift", args=[rude.pk, ban.pk]), {"note": "appeal"})
    assert "Not banned." in desk.get(page_url).content.decode()
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "reason")) == [
        ("ban", "Repeat offender"),
        ("unban", "appeal"),
    ]


def test_the_audit_log_is_read_only(desk, reported, operator):
    services.report_dismiss(report=reported, actor=operator, note="x")
    entry = AuditEntry.objects.get()

    listing = desk.get(reverse("admin:moderation_auditentry_changelist"))
    change = desk.post(
        reverse("admin:moderation_auditentry_change", args=[entry.pk]), {"reason": "edited"}
    )
    delete = desk.post(
        reverse("admin:moderation_auditentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    add = desk.get(reverse("admin:moderation_auditentry_add"))

    assert listing.status_code == 200 and b"report.dismiss" in listing.content
    assert change.status_code == 403 and delete.status_code == 403 and add.status_code == 403
    entry.refresh_from_db()
    assert entry.reason == "x"


def test_other_apps_operator_actions_are_audited(desk, lobby_of):
    lobby = lobby_of(PlayerFactory(display_name="H"))

    desk.post(reverse("admin:lobby_lobby_end", args=[lobby.pk]))

    lobby.refresh_from_db()
    assert lobby.state == Lobby.State.CLOSED
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_name, entry.target_id, entry.details) == (
        "lobby.end",
        "opal",
        str(lobby.pk),
        {"ended": 1},
    )
    assert entry.target_type == "lobby.lobby"
