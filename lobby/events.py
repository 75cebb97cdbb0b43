"""The per-player event stream (design.md §5): written with the change, pushed after commit.

Every state change a player must learn about becomes a `PlayerEvent` row, in the same transaction
as the change, with the player's next sequence number. After commit the rows are pushed to the
player's sockets. Channel layers deliver at most once, so the rows are the truth: sockets replay
from `after` on connect, and `GET /api/v1/players/me/events` reads the same rows.
"""

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F

from lobby.models import Player, PlayerEvent
from lobby.realtime import players_push

logger = logging.getLogger(__name__)


def events_emit(*, player_ids: Iterable[int], type: str, data: dict) -> list[PlayerEvent]:
    """Append an event to each player's stream; pushed to their sockets after commit."""
    return events_emit_each({player_id: data for player_id in player_ids}, type=type)


def events_emit_each(data_by_player: dict[int, dict], *, type: str) -> list[PlayerEvent]:
    """Append an event with its own data to each player's stream (e.g. their own assignment)."""
    events = []
    with transaction.atomic():
        # Player rows in pk order: two transactions emitting to overlapping players lock them
        # in the same order, so they queue instead of deadlocking.
        for player_id in sorted(data_by_player):
            Player.objects.filter(pk=player_id).update(event_seq=F("event_seq") + 1)
            seq = Player.objects.values_list("event_seq", flat=True).get(pk=player_id)
            events.append(
                PlayerEvent(player_id=player_id, seq=seq, type=type, data=data_by_player[player_id])
            )
        PlayerEvent.objects.bulk_create(events)
        transaction.on_commit(lambda: _push(events))
    return events


def _push(events: list[PlayerEvent]) -> None:
    try:
        players_push([(event.player_id, event.as_message()) for event in events])
    except Exception:
        # The rows are committed: sockets get them from the monitor's database check or on
        # reconnect, pollers by REST.
        logger.warning("push of %s event(s) failed", len(events), exc_info=True)
