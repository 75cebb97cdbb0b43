"""The per-player event stream (design.md §5): written with the change, pushed after commit.

Every state change a player must learn about becomes a `PlayerEvent` row, in the same transaction
as the change, with the player's next sequence number. After commit the rows are pushed to the
player's sockets. Channel layers deliver at most once, so the rows are the truth: sockets replay
from `after` on connect, and `GET /api/v1/players/me/events` reads the same rows.
"""

import logging
from collections.abc import Iterable

from django.db import connection, transaction

from lobby.models import Player, PlayerEvent
from lobby.realtime import players_push

logger = logging.getLogger(__name__)


def events_emit(*, player_ids: Iterable[int], type: str, data: dict) -> list[PlayerEvent]:
    """Append an event to each player's stream; pushed to their sockets after commit."""
    return events_emit_each({player_id: data for player_id in player_ids}, type=type)


def events_emit_each(data_by_player: dict[int, dict], *, type: str) -> list[PlayerEvent]:
    """Append an event with its own data to each player's stream (e.g. their own assignment)."""
    with transaction.atomic():
        seqs = _next_seqs(sorted(data_by_player))
        events = [
            PlayerEvent(player_id=player_id, seq=seq, type=type, data=data_by_player[player_id])
            for player_id, seq in sorted(seqs.items())
        ]
        PlayerEvent.objects.bulk_create(events)
        transaction.on_commit(lambda: _push(events))
    return events


def _next_seqs(player_ids: list[int]) -> dict[int, int]:
    """Take each player's next sequence number, in one statement whatever the player count.

    The player rows are locked in pk order (PostgreSQL: the sub-select's FOR UPDATE; SQLite
    writes one transaction at a time anyway), so two emits to overlapping players queue instead
    of deadlocking.
    """
    if not player_ids:
        return {}
    table = connection.ops.quote_name(Player._meta.db_table)
    marks = ", ".join(["%s"] * len(player_ids))
    # Only the quoted table name and placeholders are formatted in; the ids are parameters.
    locked = f"SELECT id FROM {table} WHERE id IN ({marks}) ORDER BY id"  # noqa: S608
    if connection.features.has_select_for_update:
        locked += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET event_seq = event_seq + 1 WHERE id IN ({locked})"  # noqa: S608
            " RETURNING id, event_seq",
            player_ids,
        )
        return dict(cursor.fetchall())


def _push(events: list[PlayerEvent]) -> None:
    try:
        players_push([(event.player_id, event.as_message()) for event in events])
    except Exception:
        # The rows are committed: sockets get them from the monitor's database check or on
        # reconnect, pollers by REST.
        logger.warning("push of %s event(s) failed", len(events), exc_info=True)
