"""Run by tests/test_sqlite_test_files.py in a pytest of its own, never collected by the suite
(no test_ prefix): the test database is still held by a process the run started when the run
ends, as a live stack's process may be; it closes it a moment after the database is deleted."""

import os
import subprocess
import sys

import pytest
from django.db import connection

from lobby.models import Player
from tests.lobby.factories import PlayerFactory

HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL")
db.execute("UPDATE lobby_player SET display_name = 'written by the holder'")
db.commit()
print("written", flush=True)
time.sleep(float(sys.argv[2]))
db.close()
"""


@pytest.mark.django_db(transaction=True)
def test_a_process_still_holds_the_test_database_when_the_run_ends():
    PlayerFactory.create_batch(20)
    assert connection.vendor == "sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, connection.settings_dict["NAME"], "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "written"
    assert Player.objects.filter(display_name="written by the holder").count() == 20
    print(f"holder pid {holder.pid}")  # it outlives this run by design
    print(f"run pid {os.getpid()}")
