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


def _settings_value(name, **env):
    """Import the settings alone (no apps) in a fresh process and print one of them."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
        and not k.startswith(("EDGEGAP_", "PUBLIC_URL"))
    }
    return subprocess.run(
        [sys.executable, "-c", f"import config.settings as s; print(repr(s.{name}))"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


EDGEGAP = "https://api.edgegap.com"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"PUBLIC_URL": "https://lobby.example.com"}, "EDGEGAP_API_TOKEN"),
        ({"EDGEGAP_API_TOKEN": "real-token"}, "PUBLIC_URL"),
        ({}, "EDGEGAP_API_TOKEN"),
    ],
)
def test_a_non_loopback_edgegap_url_refuses_to_start_without_token_or_public_url(env, missing):
    result = _check(EDGEGAP_API_URL=EDGEGAP, **env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last
    assert f"{missing} " in last and "must be set" in last
    assert "real-token" not in result.stderr


def test_a_token_file_satisfies_the_production_rule(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-the-file\n")
    result = _settings_value(
        "EDGEGAP_API_TOKEN",
        EDGEGAP_API_URL=EDGEGAP,
        EDGEGAP_API_TOKEN_FILE=str(secret),
        PUBLIC_URL="https://lobby.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "'from-the-file'"


def test_the_dev_token_is_never_the_default_for_a_remote_url():
    # The emulator's dev token is the default on loopback only.
    result = _settings_value("EDGEGAP_API_TOKEN", EDGEGAP_API_URL="http://10.0.0.5:8080")
    assert result.returncode != 0
    assert "EDGEGAP_API_TOKEN (or EDGEGAP_API_TOKEN_FILE) must be set" in result.stderr
    assert "emulator-dev-token" not in result.stderr


@pytest.mark.parametrize(
    "url", [None, "http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"]
)
def test_a_loopback_or_unset_url_runs_with_the_emulator_dev_token(url):
    env = {} if url is None else {"EDGEGAP_API_URL": url}
    result = _settings_value("EDGEGAP_API_TOKEN", **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "'emulator-dev-token'"
