"""The room page carries the chat: its section, the report dialog with the reason list, its
module and styles (the live behaviour is driven by the browser tests)."""

import pytest

from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


def test_the_room_page_has_the_chat_and_the_report_dialog(client, lobby_of):
    player = PlayerFactory()
    lobby = lobby_of(player)
    client.force_login(player.user)

    html = client.get(f"/lobbies/{lobby.pk}/").content.decode()

    assert 'id="chat-form"' in html and 'maxlength="500"' in html
    assert 'id="report-dialog"' in html
    for reason in ("harassment", "hate", "spam", "cheating", "inappropriate_name", "other"):
        assert f'<option value="{reason}">' in html
    assert "lobby/chat" in html and ".js" in html and "chat" in html and ".css" in html
