"""The real-time edge: which channel-layer group reaches a player, and pushing to it.

Every socket a player holds joins that player's group, so one push reaches all of the player's
tabs and game clients. Channel layers deliver at most once; callers that need every message to
arrive keep it in the database too and let clients replay (design.md §5).
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

# The consumer method that handles a push: `player.event` -> `EventsConsumer.player_event`.
PUSH_TYPE = "player.event"


def player_group(user_id: int) -> str:
    return f"player.{user_id}"


def player_push(*, user_id: int, message: dict) -> None:
    """Send `message` to every socket of the player. Safe to call from sync code only."""
    async_to_sync(get_channel_layer().group_send)(
        player_group(user_id), {"type": PUSH_TYPE, "message": message}
    )
