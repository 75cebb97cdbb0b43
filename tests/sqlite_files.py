"""The SQLite test database leaves nothing behind in var/ (issue 13: `make test` left 4 MB).

Why it did: Django destroys a SQLite test database by deleting its file only. SQLite deletes the
`-wal` and `-shm` files when the last connection closes, but a process started by the tests (a
live stack's web or worker process, a runstack child, a process a test kills) may still hold the
database at that moment; it cannot checkpoint into a deleted file when it closes later, so the
WAL (grown to the 1,000-page autocheckpoint, ~4 MB) and its index stay, one pair per run.

Once the database file is gone its WAL and index belong to nothing: they are removed at the end
of the session, and so are those of earlier runs whose process is gone (a run that was killed).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LEFTOVER = re.compile(r"^test-db-(\d+)\.sqlite3-(wal|shm)$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_leftovers(database: Path) -> list[Path]:
    """Remove `database`'s -wal/-shm once it is deleted, and any other run's in the same folder
    whose database is deleted and whose process has ended. Returns what was removed."""
    removed = []
    for path in sorted(database.parent.glob("test-db-*.sqlite3-*")):
        match = LEFTOVER.match(path.name)
        if not match:
            continue
        main = path.with_name(path.name.rsplit("-", 1)[0])
        ours = main == database
        if main.exists() or (not ours and _running(int(match.group(1)))):
            continue  # in use: this run's before it ends, or a run still going
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
