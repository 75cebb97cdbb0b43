"""The real-time edge: which channel-layer group reaches a player, and pushing to it.

Every socket a player holds joins that player's group, so one push reaches all of the player's
tabs and game clients. Channel layers deliver at most once; what must arrive is also written to
the player's event stream (lobby.events), which sockets replay on connect.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

# The consumer method that handles a push: `player.event` -> `EventsConsumer.player_event`.
PUSH_TYPE = "player.event"


def player_group(player_id: int) -> str:
    return f"player.{player_id}"


def player_push(*, player_id: int, message: dict) -> None:
    """Send `message` to every socket of the player. Safe to call from sync code only."""
    async_to_sync(get_channel_layer().group_send)(
        player_group(player_id), {"type": PUSH_TYPE, "message": message}
    )
