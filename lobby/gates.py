"""Doors other apps may guard without lobby importing them (design.md §1: imports flow one way).

`moderation` sits above `lobby` and `matchmaking` (it imports both, neither imports it), yet a
banned player must be refused at lobby's doors (create, join) and matchmaking's (queue). So the
doors call `players_admit`, and apps above register the checks it runs (moderation does in its
AppConfig.ready). A check raises a `lobby.errors.ServiceError` to refuse; with no check
registered every player is admitted.

A door calls `players_admit` inside its own transaction, after the locks it takes first (the
lobby row): a check may lock the players' rows (pk order), so that a ban committed meanwhile is
either seen here or finds the membership this door creates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# check(player_ids=[caller, ...], door="lobby_create" | "lobby_join" | "queue") -> None or raises
Check = Callable[..., None]
_checks: dict[str, Check] = {}


def gate_register(name: str, check: Check) -> None:
    """Add (or replace, by name: AppConfig.ready may run twice in tests) a check."""
    _checks[name] = check


def players_admit(*, player_ids: Iterable[int], door: str) -> None:
    """Run every registered check; the first that refuses raises its `ServiceError`.
    `player_ids` starts with the caller (the others: the party it queues)."""
    ids = list(dict.fromkeys(player_ids))
    for check in list(_checks.values()):
        check(player_ids=ids, door=door)
