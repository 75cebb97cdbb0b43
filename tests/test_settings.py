"""Configuration is strict: a malformed variable stops start-up with a message naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _check(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "nosuchdb://host/name"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("DEBUG", "maybe"),
        ("RELAY_READY_TIMEOUT", "soon"),
        ("RELAY_READY_TIMEOUT", "-5"),
        ("EDGEGAP_API_URL", "api.edgegap.com"),
        ("THROTTLE_PLAYER", "lots"),
        ("LOBBY_MAX_PLAYERS", "1"),
        ("MATCHMAKER_INTERVAL", "0"),
    ],
)
def test_malformed_variable_stops_startup_naming_it(name, value):
    result = _check(**{name: value})
    assert result.returncode != 0
    assert f"{name}=" in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_missing_secret_key_stops_startup_when_debug_is_off():
    result = _check(DEBUG="false", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_unreadable_token_file_names_the_variable_without_the_path_contents(tmp_path):
    result = _check(EDGEGAP_API_TOKEN_FILE=str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "EDGEGAP_API_TOKEN_FILE=" in result.stderr


def test_token_file_wins_over_the_plain_variable(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-the-file\n")
    code = "from django.conf import settings; print(settings.EDGEGAP_API_TOKEN)"
    clean = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**clean, "EDGEGAP_API_TOKEN": "plain", "EDGEGAP_API_TOKEN_FILE": str(secret)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "from-the-file"
