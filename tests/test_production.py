"""Production defaults are safe: HTTPS redirect and HSTS with DEBUG off, the proxy's scheme header
from the environment, /metrics closed without a token, `check --deploy` clean with the
documented production environment (deploy/production.env.example)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "production.env.example"


def _documented_env(tmp_path) -> dict:
    env = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    # The example's secrets are files under /run/secrets; these are real ones.
    for name in ("SECRET_KEY", "EDGEGAP_API_TOKEN", "METRICS_TOKEN"):
        secret = tmp_path / name
        secret.write_text(secrets.token_urlsafe(50))
        env[f"{name}_FILE"] = str(secret)
    # `check` does not connect to the database or Redis, but the URLs must parse.
    return env


def _run(args, env):
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
        and not k.startswith(("EDGEGAP_", "PUBLIC_URL", "SECURE_", "METRICS_"))
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_is_clean_with_the_documented_production_env(tmp_path):
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                  _documented_env(tmp_path))  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_a_missing_metrics_token(tmp_path):
    env = _documented_env(tmp_path)
    del env["METRICS_TOKEN_FILE"]

    result = _run(["manage.py", "check", "--deploy"], env)

    assert "relaylobby.W001" in result.stderr + result.stdout
    assert "METRICS_TOKEN" in result.stderr + result.stdout


def test_debug_off_defaults_redirect_to_https_and_send_hsts(tmp_path):
    env = {"DEBUG": "false", "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "lobby.example.com"}
    code = "import config.settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS," \
           " s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE)"  # fmt: skip

    result = _run(["-c", code], env)
    proxied = _run(["-c", code], {**env, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"})
    custom = _run(["-c", code], {**env, "SECURE_PROXY_SSL_HEADER": "X-Scheme: secure"})
    typo = _run(["-c", code], {**env, "SECURE_SSL_REDIRECT": "ture"})

    assert result.stdout.split() == ["True", "31536000", "None", "True"], result.stderr
    assert "('HTTP_X_FORWARDED_PROTO', 'https')" in proxied.stdout
    assert "('HTTP_X_SCHEME', 'secure')" in custom.stdout
    assert typo.returncode != 0 and "SECURE_SSL_REDIRECT='ture'" in typo.stderr


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.METRICS_REQUIRE_TOKEN = True  # what DEBUG=false at start-up sets
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["testserver"]
    return settings


@pytest.mark.django_db
def test_plain_http_is_redirected_but_probes_are_not(client, production):
    redirected = client.get("/api/v1/lobbies")
    probe = client.get("/healthz")
    secure = client.get("/api/v1/lobbies", HTTP_X_FORWARDED_PROTO="https")

    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/api/v1/lobbies"
    assert probe.status_code == 200
    assert secure.status_code == 401  # served (no credentials), over HTTPS
    assert secure["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.django_db
def test_metrics_are_refused_without_a_token_when_debug_is_off(client, production):
    production.METRICS_TOKEN = None

    response = client.get("/metrics")

    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content
    assert b"relaylobby_" not in response.content


@pytest.mark.django_db
def test_metrics_answer_the_token_when_debug_is_off(client, production):
    production.METRICS_TOKEN = "scrape-secret"

    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert ok.status_code == 200
    assert b"relaylobby_lobbies" in ok.content
