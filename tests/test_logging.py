"""The log keeps what matters: routine tasks' per-run Celery lines are DEBUG (issue 13: the
matcher's three INFO lines a second were half the log), failures and real work stay visible."""

import io
import logging

import pytest
from celery.app import trace
from celery.beat import info as beat_info

from config.logging_filters import RoutineTaskLines


@pytest.fixture
def console():
    """The console handler configured by settings.LOGGING, writing into a buffer."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    assert any(isinstance(f, RoutineTaskLines) for f in handler.filters)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def _worker_lines(name: str, return_value: str) -> None:
    # The same calls Celery's worker makes (celery.worker.strategy and celery.app.trace).
    context = {"id": "t-1", "name": name, "args": "()", "kwargs": "{}", "eta": None}
    received = logging.getLogger("celery.worker.strategy")
    received.info(trace.LOG_RECEIVED, context, extra={"data": context})
    trace.info(trace.LOG_SUCCESS, {**context, "return_value": return_value, "runtime": 0.01})


def test_an_idle_matcher_run_writes_no_info_line(console):
    beat_info("Scheduler: Sending due task %s (%s)", "matchmaking-run", "matchmaking.run")
    _worker_lines("matchmaking.run", "0")
    logging.getLogger("matchmaking.services").debug("matchmaking %s", "nothing")
    assert console.getvalue() == ""


def test_a_run_that_matched_and_other_tasks_stay_at_info(console):
    _worker_lines("matchmaking.run", "2")  # two matches: its "succeeded" line stays
    _worker_lines("relays.session_create", "None")  # not routine: both lines stay
    beat_info("Scheduler: Sending due task %s (%s)", "relays-reconcile", "relays.reconcile")
    logging.getLogger("relays.services").warning("relay x: failed: Edgegap said 503")
    lines = console.getvalue().splitlines()
    assert [line.split(" ", 3)[2] for line in lines] == ["INFO", "INFO", "INFO", "WARNING"]
    assert "matchmaking.run[t-1] succeeded" in lines[0] and ": 2" in lines[0]
    assert "relays.session_create[t-1] received" in lines[1]
    assert "Edgegap said 503" in lines[3]


def test_at_log_level_debug_the_routine_lines_are_shown_as_debug():
    record = logging.LogRecord(
        "celery.beat", logging.INFO, __file__, 1, "Scheduler: Sending due task %s (%s)",
        ("matchmaking-run", "matchmaking.run"), None,
    )  # fmt: skip
    assert RoutineTaskLines(level="DEBUG").filter(record) is True
    assert record.levelname == "DEBUG"
    again = logging.makeLogRecord({**record.__dict__, "levelno": logging.INFO})
    assert RoutineTaskLines(level="INFO").filter(again) is False
