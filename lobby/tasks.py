from celery import shared_task

from lobby import services
from lobby.realtime import player_push


@shared_task(name="lobby.push_to_player")
def push_to_player(player_id: int, message: dict) -> None:
    """Push a message to a player's sockets from a worker (it crosses processes through Redis)."""
    player_push(player_id=player_id, message=message)


@shared_task(name="lobby.close_abandoned", acks_late=True)
def close_abandoned() -> int:
    return services.lobbies_close_abandoned()


@shared_task(name="lobby.prune_events", acks_late=True)
def prune_events() -> int:
    return services.events_prune()
