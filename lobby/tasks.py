from celery import shared_task

from lobby.realtime import player_push


@shared_task(name="lobby.push_to_player")
def push_to_player(user_id: int, message: dict) -> None:
    """Push a message to a player's sockets from a worker (it crosses processes through Redis)."""
    player_push(user_id=user_id, message=message)
