"""Operators' admin: pages load, relay tokens are masked, and the actions do what they say."""

import html
import json
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from lobby import services
from lobby.models import Lobby
from matchmaking.models import Party, Profile
from matchmaking.rules import EXAMPLE_RULES
from relays.models import RelaySession, Seat, UnownedSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_lobby(django_capture_on_commit_callbacks):
    host, _ = services.player_create_guest(display_name="host")
    guest, _ = services.player_create_guest(display_name="guest")
    lobby = services.lobby_create(player=host, ip="203.0.113.1", name="admin view", max_players=4)
    services.lobby_join(lobby_id=lobby.pk, player=guest, ip="198.51.100.2")
    for player in (host, guest):
        services.lobby_set_ready(lobby_id=lobby.pk, player=player, ready=True, ip="203.0.113.9")
    with django_capture_on_commit_callbacks(execute=False):
        services.lobby_start(lobby_id=lobby.pk, player=host)
    lobby.refresh_from_db()
    # As if the relay became ready: endpoint and tokens stored.
    RelaySession.objects.filter(pk=lobby.relay_session_id).update(
        status=RelaySession.Status.READY,
        session_id="abc123-S",
        session_token=3500589645,
        relay_ip="127.0.0.1",
        server_port=31000,
        client_port=31001,
        ready_at=timezone.now(),
    )
    for n, seat in enumerate(Seat.objects.filter(session_id=lobby.relay_session_id)):
        Seat.objects.filter(pk=seat.pk).update(user_token=4000000000 + n)
    return lobby


def test_admin_pages_show_relay_sessions_with_tokens_masked(admin_client, ready_lobby):
    pages = [
        "/admin/relays/relaysession/",
        f"/admin/relays/relaysession/{ready_lobby.relay_session_id}/change/",
        "/admin/lobby/lobby/?state__exact=allocating",
        f"/admin/lobby/lobby/{ready_lobby.pk}/change/",
        "/admin/lobby/player/",
        "/admin/relays/relaysession/?age=5m&status__exact=ready",
    ]
    for path in pages:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        text = response.content.decode()
        assert "3500589645" not in text
        assert "4000000000" not in text and "4000000001" not in text
    detail = admin_client.get(f"/admin/relays/relaysession/{ready_lobby.relay_session_id}/change/")
    assert "•••645" in detail.content.decode()


def test_admin_search_finds_a_lobby_by_code_and_by_player(admin_client, ready_lobby):
    by_code = admin_client.get(f"/admin/lobby/lobby/?q={ready_lobby.join_code}")
    by_player = admin_client.get("/admin/lobby/lobby/?q=guest")
    assert "admin view" in by_code.content.decode()
    assert "admin view" in by_player.content.decode()


def test_end_lobby_action_closes_it_and_its_relay_session(
    admin_client, ready_lobby, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            "/admin/lobby/lobby/",
            {"action": "end_lobbies", "_selected_action": [str(ready_lobby.pk)]},
        )
    assert response.status_code == 302
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == Lobby.State.CLOSED
    assert ready_lobby.relay_session.status == RelaySession.Status.CLOSING


def test_retry_relay_allocation_gives_a_failed_lobby_a_new_session(
    admin_client, ready_lobby, django_capture_on_commit_callbacks
):
    Lobby.objects.filter(pk=ready_lobby.pk).update(state=Lobby.State.FAILED)
    old_session = ready_lobby.relay_session_id
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(
            "/admin/lobby/lobby/",
            {"action": "retry_relay_allocation", "_selected_action": [str(ready_lobby.pk)]},
        )
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == Lobby.State.ALLOCATING
    assert ready_lobby.relay_session_id != old_session
    assert RelaySession.objects.get(pk=old_session).status == RelaySession.Status.CLOSING
    assert list(ready_lobby.relay_session.seats.values_list("holder", flat=True)) == [
        f"player:{ready_lobby.host_id}",
        f"player:{ready_lobby.memberships.exclude(player=ready_lobby.host_id).get().player_id}",
    ]


def test_reconcile_now_is_a_button_that_needs_no_selected_row(admin_client, monkeypatch):
    queued = []
    monkeypatch.setattr("relays.tasks.reconcile.delay", lambda: queued.append(True))
    assert not RelaySession.objects.exists()
    page = admin_client.get("/admin/relays/relaysession/").content.decode()
    assert "Reconcile now" in page
    assert admin_client.get("/admin/relays/relaysession/reconcile/").status_code == 405
    assert queued == []  # never on a GET
    response = admin_client.post("/admin/relays/relaysession/reconcile/")
    assert response.status_code == 302
    assert queued == [True]
    assert "Reconciliation queued" in admin_client.get(response.url).content.decode()


# --- Issue 13: no admin path bypasses the services -------------------------------------------


def _textarea(html_text: str, name: str) -> str:
    found = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', html_text, re.S)
    assert found, f"no textarea {name}"
    return html.unescape(found.group(1)).removeprefix("\n")


def test_a_new_profile_saves_its_own_example_unchanged(admin_client):
    page = admin_client.get("/admin/matchmaking/profile/add/").content.decode()
    rules = _textarea(page, "rules")
    assert json.loads(rules) == EXAMPLE_RULES  # the example itself, not its JSON as a string
    response = admin_client.post(
        "/admin/matchmaking/profile/add/",
        {"name": "squad", "title": "Squad", "rules": rules, "ticket_ttl": 300, "enabled": "on"},
    )
    assert response.status_code == 302, _errors(response)
    assert Profile.objects.get(name="squad").rules == EXAMPLE_RULES


def _errors(response) -> list[str]:
    return re.findall(r'class="errorlist[^"]*"[^>]*><li>(.*?)</li>', response.content.decode())


def test_profile_form_says_where_rules_are_wrong(admin_client):
    base = {"name": "bad", "ticket_ttl": 300, "enabled": "on"}
    broken = admin_client.post(
        "/admin/matchmaking/profile/add/", {**base, "rules": '{\n  "initial": {,\n}'}
    )
    assert any("line 2, column 15" in e for e in _errors(broken)), _errors(broken)
    wrong = admin_client.post(
        "/admin/matchmaking/profile/add/",
        {**base, "rules": json.dumps({"initial": {"skill": {"type": "number_difference"}}})},
    )
    assert any("rules.initial" in html.unescape(e) for e in _errors(wrong)), _errors(wrong)
    assert not Profile.objects.exists()


@pytest.mark.parametrize(
    "changelist",
    [
        "/admin/lobby/lobby/",
        "/admin/lobby/player/",
        "/admin/relays/relaysession/",
        "/admin/relays/unownedsession/",
        "/admin/matchmaking/ticket/",
        "/admin/matchmaking/party/",
    ],
)
def test_no_stock_delete_on_rows_whose_deletion_breaks_state(admin_client, ready_lobby, changelist):
    page = admin_client.get(changelist).content.decode()
    assert 'value="delete_selected"' not in page
    rows = {
        "/admin/lobby/lobby/": str(ready_lobby.pk),
        "/admin/relays/relaysession/": str(ready_lobby.relay_session_id),
        "/admin/lobby/player/": str(ready_lobby.host_id),
    }
    if changelist in rows:
        # Posting the stock action by hand does not delete either.
        admin_client.post(
            changelist, {"action": "delete_selected", "_selected_action": [rows[changelist]]}
        )
        detail = f"{changelist}{rows[changelist]}/delete/"
        assert admin_client.get(detail).status_code == 403
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == Lobby.State.ALLOCATING  # as the fixture left it
    assert ready_lobby.relay_session.status == RelaySession.Status.READY
    assert ready_lobby.memberships.filter(state="active").count() == 2


@pytest.mark.parametrize(
    "add", ["/admin/matchmaking/party/add/", "/admin/lobby/player/add/",
            "/admin/relays/unownedsession/add/", "/admin/lobby/lobby/add/",
            "/admin/relays/relaysession/add/", "/admin/matchmaking/ticket/add/"],
)  # fmt: skip
def test_nothing_an_operator_cannot_meaningfully_create_can_be_added(admin_client, add):
    assert admin_client.get(add).status_code == 403
    assert admin_client.post(add, {"display_name": "x", "max_size": 4}).status_code == 403
    assert not Party.objects.exists() and not UnownedSession.objects.exists()


def test_lobby_list_is_newest_first_with_state_host_players_and_filters(admin_client, ready_lobby):
    older = services.lobby_create(
        player=services.player_create_guest(display_name="early")[0],
        ip="203.0.113.5",
        name="old",
        max_players=2,
    )
    Lobby.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=3))
    page = admin_client.get("/admin/lobby/lobby/").content.decode()
    assert page.index("admin view") < page.index(">old<")
    assert "2 / 4" in page and "host" in page
    for label in ("By state", "By relay session", "By age"):
        assert label in page
    only_relayed = admin_client.get("/admin/lobby/lobby/?relay=yes").content.decode()
    assert "admin view" in only_relayed and ">old<" not in only_relayed


def test_lobby_detail_has_end_and_retry_buttons_members_by_name_and_no_save(
    admin_client, ready_lobby, django_capture_on_commit_callbacks
):
    Lobby.objects.filter(pk=ready_lobby.pk).update(state=Lobby.State.READY)
    url = f"/admin/lobby/lobby/{ready_lobby.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "End lobby" in page
    assert "Retry relay allocation" not in page  # a ready lobby has nothing to retry
    assert 'name="_save"' not in page
    assert "host</a> (host)" in page and "guest</a>" in page
    assert f"in {ready_lobby.pk}" not in page  # not "Alice in 5e9d7e69-… (active)"
    assert admin_client.get(f"/admin/lobby/lobby/{ready_lobby.pk}/end/").status_code == 405
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(f"/admin/lobby/lobby/{ready_lobby.pk}/end/")
    assert response.status_code == 302 and response.url == url
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == Lobby.State.CLOSED
    assert ready_lobby.closed_reason == "ended_by_operator"
    assert ready_lobby.relay_session.status == RelaySession.Status.CLOSING


def test_retry_button_on_a_failed_lobby(
    admin_client, ready_lobby, django_capture_on_commit_callbacks
):
    Lobby.objects.filter(pk=ready_lobby.pk).update(state=Lobby.State.FAILED)
    page = admin_client.get(f"/admin/lobby/lobby/{ready_lobby.pk}/change/").content.decode()
    assert "Retry relay allocation" in page
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(f"/admin/lobby/lobby/{ready_lobby.pk}/retry/")
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == Lobby.State.ALLOCATING


def test_delete_at_edgegap_closes_through_the_service(
    admin_client, ready_lobby, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        admin_client.post(
            "/admin/relays/relaysession/",
            {"action": "delete_at_edgegap", "_selected_action": [ready_lobby.relay_session_id]},
        )
    session = RelaySession.objects.get(pk=ready_lobby.relay_session_id)
    assert session.status == RelaySession.Status.CLOSING
    assert session.last_error == "closed by an operator"
    # The lobby learns at once, not when (or if) Edgegap confirms the delete.
    ready_lobby.refresh_from_db()
    assert ready_lobby.state == "failed"
    assert ready_lobby.failure_reason == "the relay session ended: closed by an operator"
    sent = [getattr(callback, "__qualname__", "") for callback in callbacks]
    assert sum("_after_commit" in name for name in sent) == 1  # the delete at Edgegap


def test_overview_site_title_and_favicon(admin_client, ready_lobby):
    Profile.objects.create(name="duel", title="Duel", rules=EXAMPLE_RULES)
    RelaySession.objects.create(
        owner="x", status=RelaySession.Status.FAILED, last_error="Edgegap said 503",
        ready_deadline=timezone.now(), closed_at=timezone.now(),
    )  # fmt: skip
    index = admin_client.get("/admin/").content.decode()
    assert "Relay lobby operations" in index and "/admin/overview/" in index
    assert 'rel="icon"' in index
    page = admin_client.get("/admin/overview/")
    assert page.status_code == 200
    text = page.content.decode()
    for expected in ("Lobbies (1 live)", "Duel", "Edgegap said 503", "Allocations failed"):
        assert expected in text, expected
    assert "ready without a ready relay session" not in text
    icon = admin_client.get("/favicon.ico")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"


def test_overview_needs_staff(client):
    response = client.get("/admin/overview/")
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_profiles_export_then_import_elsewhere(tmp_path):
    Profile.objects.create(name="duel", title="Duel 1v1", rules=EXAMPLE_RULES, ticket_ttl=120)
    path = tmp_path / "profiles.json"
    call_command("matchmaking_profiles", "export", str(path))
    exported = json.loads(path.read_text())
    assert exported["profiles"][0]["name"] == "duel"
    Profile.objects.all().delete()
    call_command("matchmaking_profiles", "import", str(path))
    duel = Profile.objects.get(name="duel")
    assert (duel.title, duel.ticket_ttl, duel.rules) == ("Duel 1v1", 120, EXAMPLE_RULES)
    # A second import updates by name.
    exported["profiles"][0]["ticket_ttl"] = 60
    path.write_text(json.dumps(exported))
    call_command("matchmaking_profiles", "import", str(path))
    assert Profile.objects.get(name="duel").ticket_ttl == 60


def test_profiles_import_validates_like_the_form_and_writes_nothing_on_error(tmp_path):
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"profiles": [
        {"name": "good", "rules": EXAMPLE_RULES},
        {"name": "bad", "rules": {"initial": {"skill": {"type": "number_difference"}}}},
    ]}))  # fmt: skip
    with pytest.raises(CommandError, match=r"profile 'bad': rules: rules\.initial"):
        call_command("matchmaking_profiles", "import", str(path))
    assert not Profile.objects.exists()
    path.write_text('{"profiles": [}')
    with pytest.raises(CommandError, match="line 1, column 15"):
        call_command("matchmaking_profiles", "import", str(path))
    path.write_text(json.dumps([{"name": "x y", "rules": EXAMPLE_RULES, "colour": 1}]))
    with pytest.raises(CommandError, match="unknown field 'colour'"):
        call_command("matchmaking_profiles", "import", str(path))


def test_deleting_a_user_cannot_take_a_player_out_of_a_live_lobby(admin_client, ready_lobby):
    # Player rows cascade from their user: the stock user delete must not strand the lobby.
    user_id = ready_lobby.host.user_id
    page = admin_client.post(f"/admin/auth/user/{user_id}/delete/", {"post": "yes"})
    assert page.status_code in (200, 403)  # refused: a permission page, not a redirect
    ready_lobby.refresh_from_db()
    assert ready_lobby.member_count == 2 and ready_lobby.host.user_id == user_id
