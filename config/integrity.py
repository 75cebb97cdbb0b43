"""Which database constraint an IntegrityError broke, by name, on PostgreSQL and SQLite alike.

Services turn a broken constraint into a domain answer (`one_active_lobby_per_player` ->
409 already_in_lobby). Matching the database's error text is fragile (it differs by database,
version and locale) and mapping every IntegrityError to one answer hides real bugs, so services
ask for the constraint's name and re-raise anything they do not expect.
"""

from __future__ import annotations

import re

from django.apps import apps
from django.db import IntegrityError
from django.db.models import UniqueConstraint

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (\w+)")


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint `exc` reports, or None when it cannot be told.

    Named constraints (a model's `Meta.constraints`) come back by their name on both databases.
    A field's `unique=True` comes back as PostgreSQL names it, `<table>_<column>_key`.
    """
    diag = getattr(exc.__cause__, "diag", None)
    if diag is not None:  # psycopg
        return diag.constraint_name
    message = str(exc)
    found = _SQLITE_CHECK.search(message)
    if found:
        return found.group(1)
    found = _SQLITE_UNIQUE.search(message)
    if found is None:
        return None
    # SQLite names the columns ("lobby_membership.player_id"), or for an index, the index.
    columns = [item.strip() for item in found.group(1).split(",")]
    if len(columns) == 1 and columns[0].startswith("index "):
        return columns[0][len("index ") :].strip("'")
    table = columns[0].split(".", 1)[0]
    names = tuple(column.split(".", 1)[1] for column in columns)
    return _unique_constraint_for(table, names)


def _unique_constraint_for(table: str, columns: tuple[str, ...]) -> str:
    for model in apps.get_models():
        if model._meta.db_table != table:
            continue
        for constraint in model._meta.constraints:
            if isinstance(constraint, UniqueConstraint) and constraint.fields:
                fields = tuple(model._meta.get_field(name).column for name in constraint.fields)
                if fields == columns:
                    return constraint.name
    return f"{table}_{'_'.join(columns)}_key"
