import pytest
from django.contrib.auth import get_user_model

from tests.lobby.conftest import (  # noqa: F401 - the lobby tests' fixtures, shared
    _fresh_throttle_counts,
    anonymous,
    api,
    api_client_for,
    client_for,
    events_of,
    lobby_of,
    player,
    relay_ready,
    start_match,
    throttle_rates,
)


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("opal", "opal@example.test", "pw-opal-123")
