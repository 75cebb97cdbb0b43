"""The per-player event stream (design.md §5): written with the change, pushed after commit.

Every state change a player must learn about becomes a `PlayerEvent` row, in the same transaction
as the change, with the player's next sequence number. After commit the rows are pushed to the
player's sockets. Channel layers deliver at most once, so the rows are the truth: sockets replay
from `after` on connect, and `GET /api/v1/players/me/events` reads the same rows.
"""

import logging
from collections.abc import Iterable, Sequence

from django.db import connection, transaction

from lobby.models import Player, PlayerEvent
from lobby.realtime import players_push

logger = logging.getLogger(__name__)


def events_emit(*, player_ids: Iterable[int], type: str, data: dict) -> list[PlayerEvent]:
    """Append an event to each player's stream; pushed to their sockets after commit."""
    return events_emit_each({player_id: data for player_id in player_ids}, type=type)


def events_emit_each(data_by_player: dict[int, dict], *, type: str) -> list[PlayerEvent]:
    """Append an event with its own data to each player's stream (e.g. their own assignment)."""
    return events_emit_many([(type, data_by_player)])


def events_emit_many(batches: Sequence[tuple[str, dict[int, dict]]]) -> list[PlayerEvent]:
    """Append several events, in order: each batch is (type, data per player). One statement
    takes every sequence number and one inserts every row, whatever the count (a start tells
    each member of the lobby and of its assignment at once)."""
    counts: dict[int, int] = {}
    for _, data_by_player in batches:
        for player_id in data_by_player:
            counts[player_id] = counts.get(player_id, 0) + 1
    # No savepoint: a failure here fails the caller's whole change, which is what it must do.
    with transaction.atomic(savepoint=False):
        last = _take_seqs(counts)
        # Each player's numbers run up to `last`: hand them out in batch order.
        seq = {player_id: last[player_id] - counts[player_id] for player_id in counts}
        events = []
        for type, data_by_player in batches:
            for player_id in sorted(data_by_player):
                seq[player_id] += 1
                events.append(
                    PlayerEvent(
                        player_id=player_id,
                        seq=seq[player_id],
                        type=type,
                        data=data_by_player[player_id],
                    )
                )
        PlayerEvent.objects.bulk_create(events)
        transaction.on_commit(lambda: _push(events))
    return events


def _take_seqs(counts: dict[int, int]) -> dict[int, int]:
    """Advance each player's sequence number by ``counts[player]``, in one statement whatever
    the player count; returns each player's new (last taken) number.

    The player rows are locked in pk order (PostgreSQL: the sub-select's FOR UPDATE; SQLite
    writes one transaction at a time anyway), so two emits to overlapping players queue instead
    of deadlocking.
    """
    if not counts:
        return {}
    player_ids = sorted(counts)
    table = connection.ops.quote_name(Player._meta.db_table)
    marks = ", ".join(["%s"] * len(player_ids))
    steps = set(counts.values())
    if len(steps) == 1:
        step, step_params = "%s", [steps.pop()]
    else:
        step = "CASE id " + "WHEN %s THEN %s " * len(player_ids) + "END"
        step_params = [x for pid in player_ids for x in (pid, counts[pid])]
    # Only the quoted table name and placeholders are formatted in; the ids are parameters.
    locked = f"SELECT id FROM {table} WHERE id IN ({marks}) ORDER BY id"  # noqa: S608
    if connection.features.has_select_for_update:
        locked += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET event_seq = event_seq + {step} WHERE id IN ({locked})"  # noqa: S608
            " RETURNING id, event_seq",
            [*step_params, *player_ids],
        )
        return dict(cursor.fetchall())


def _push(events: list[PlayerEvent]) -> None:
    try:
        players_push([(event.player_id, event.as_message()) for event in events])
    except Exception:
        # The rows are committed: sockets get them from the monitor's database check or on
        # reconnect, pollers by REST.
        logger.warning("push of %s event(s) failed", len(events), exc_info=True)
