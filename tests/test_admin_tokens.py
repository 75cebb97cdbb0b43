"""Staff never read a player's API token in the admin (issue 12): DRF's token admin is masked."""

import pytest

from lobby.admin import mask_key
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db


def test_the_token_admin_masks_every_key(admin_client):
    player = PlayerFactory(display_name="Alice")
    key = player.user.auth_token.key
    pages = [
        "/admin/authtoken/tokenproxy/",
        f"/admin/authtoken/tokenproxy/{player.user.pk}/change/",
        f"/admin/authtoken/tokenproxy/{player.user.pk}/delete/",
        f"/admin/authtoken/tokenproxy/{player.user.pk}/history/",
    ]

    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert key not in response.content.decode(), page
    listing = admin_client.get(pages[0]).content.decode()
    assert mask_key(key) in listing and player.user.username in listing


def test_deleting_a_token_revokes_it_without_logging_its_key(admin_client):
    from django.contrib.admin.models import LogEntry

    player = PlayerFactory()
    key = player.user.auth_token.key

    response = admin_client.post(
        f"/admin/authtoken/tokenproxy/{player.user.pk}/delete/", {"post": "yes"}
    )

    assert response.status_code == 302
    player.user.refresh_from_db()
    assert not hasattr(player.user, "auth_token")
    assert all(key not in entry.object_repr for entry in LogEntry.objects.all())
    assert LogEntry.objects.filter(object_repr__startswith="API token of").exists()
