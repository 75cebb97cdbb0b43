"""Celery's bookkeeping lines for routine tasks, at DEBUG instead of INFO.

Beat sends the matcher every second, and each run wrote three INFO lines (beat's "Sending due
task", the worker's "received" and "succeeded"): half the log within minutes, burying relay
failures. For the tasks below those lines become DEBUG, unless a run returned something (a
matcher pass that made matches returns their count). The services log what a pass did at INFO,
and failures (WARNING, ERROR) are never touched.
"""

import logging

from celery.app.trace import LOG_RECEIVED

ROUTINE_TASKS = frozenset(
    {
        "matchmaking.run",
        "relays.sweep",
        "relays.reconcile",
        "lobby.close_abandoned",
        "lobby.prune_events",
        "lobby.push_to_player",
    }
)
NOTHING = frozenset({"0", "None", "[]", "{}"})


def _is_routine(record: logging.LogRecord) -> bool:
    if record.name == "celery.beat":
        args = record.args if isinstance(record.args, tuple) else ()
        return record.msg.startswith("Scheduler: Sending due task") and bool(
            args and args[-1] in ROUTINE_TASKS
        )
    data = getattr(record, "data", None)
    if not isinstance(data, dict) or data.get("name") not in ROUTINE_TASKS:
        return False
    if "return_value" in data:  # "succeeded": routine unless the run did something
        return str(data["return_value"]) in NOTHING
    return record.msg == LOG_RECEIVED


class RoutineTaskLines(logging.Filter):
    """A handler filter: demotes routine tasks' INFO lines to DEBUG (shown at LOG_LEVEL=DEBUG)."""

    def __init__(self, level: str = "INFO"):
        super().__init__()
        self.show_debug = logging.getLevelName(level) <= logging.DEBUG

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _is_routine(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.show_debug
        return True
