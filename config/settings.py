"""Settings, read from the environment (design.md §3).

Every variable is read here and nowhere else. Defaults run a fresh checkout; a malformed value
stops start-up with a message that names the variable. The stack is chosen by what is configured:
`DATABASE_URL` picks the database, and `REDIS_URL` (when set) carries the Celery broker, the
channel layer and the cache. Without `REDIS_URL` everything stays in-process (eager Celery,
in-memory channel layer, local-memory cache), which is what the unit tests run on; `runstack`
always provides one, starting an embedded Redis when none is configured.
"""

import contextlib
import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # runtime files of the default stack (SQLite, beat schedule, static)

env = environ.Env()


def _read(name, parse, default):
    """Read one variable, turning a parse failure into a message that names it."""
    if name not in env.ENVIRON:
        return default
    raw = env.ENVIRON[name]
    try:
        return parse(raw)
    except (ValueError, TypeError, ImproperlyConfigured, KeyError) as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not valid: {exc}") from None


def _bool(raw):
    # Strict, like healthchecks' envbool: a typo must not silently mean False.
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _positive_float(raw):
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a positive number")
    return value


def _rate(raw):
    # DRF reads "<count>/<period>" on the first throttled request: a typo must fail at start-up,
    # not as a 500 on every call.
    count, _, period = raw.partition("/")
    if not count.isdigit() or period[:1] not in ("s", "m", "h", "d"):
        raise ValueError("expected a rate such as 300/min (per second, min, hour or day)")
    return raw


def _lobby_size(raw):
    value = int(raw)
    if not 2 <= value <= 1000:
        raise ValueError("expected a whole number from 2 to 1000")
    return value


def _csv(raw):
    return [item.strip() for item in raw.split(",") if item.strip()]


def _url(raw, schemes):
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in schemes:
        raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return raw


def _database(raw):
    scheme = raw.split("://", 1)[0] if "://" in raw else None
    if scheme not in environ.Env.DB_SCHEMES:
        raise ValueError("expected a URL such as sqlite:///db.sqlite3 or postgres://user@host/name")
    return environ.Env.db_url_config(raw)


def _secret_from_file(name):
    """`<NAME>_FILE` names a file holding the secret (Docker/Kubernetes); it wins over `<NAME>`."""
    path = _read(f"{name}_FILE", str, None)
    if path is None:
        return _read(name, str, None)
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from None


DEBUG = _read("DEBUG", _bool, True)

SECRET_KEY = _secret_from_file("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = _read("ALLOWED_HOSTS", _csv, ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = _read("CSRF_TRUSTED_ORIGINS", _csv, [])
# A CSRF refusal under /api/ answers in the API's JSON shape, never Django's HTML page.
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"
TRUSTED_PROXIES = _read("TRUSTED_PROXIES", _csv, [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "servestatic",
    "channels",
    "config",
    "relays",
    "lobby",
    "ratings",
    "matchmaking",
    "moderation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Async-capable (WhiteNoise is sync-only, which would pin a thread for each long-poll).
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Pool exhaustion in a non-DRF view: 503 + Retry-After, not a 500 (config/admission.py).
    "config.errors.OverloadMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------

DATABASES = {"default": _read("DATABASE_URL", _database, None) or _database("sqlite:///db.sqlite3")}
_db = DATABASES["default"]
# Under ASGI every request may run on a new thread: persistent connections leak there.
_db["CONN_MAX_AGE"] = 0


def _pool_size(raw):
    value = int(raw)
    if not 1 <= value <= 1000:
        raise ValueError("expected a whole number from 1 to 1000")
    return value


# PostgreSQL connections each process may hold (its pool's size; README "Sizing the database
# pool" has the max_connections arithmetic), and how long a request waits for one before it is
# answered 503: far less than a client's patience.
DATABASE_POOL_SIZE = _read("DATABASE_POOL_SIZE", _pool_size, 10)
DATABASE_POOL_TIMEOUT = _read("DATABASE_POOL_TIMEOUT", _positive_float, 2.0)
# Admission control (config/admission.py): at most this many sync requests run at once per web
# process, two fewer than the pool holds so that probes, sockets and long-polls find a connection;
# the others queue up to REQUEST_QUEUE_TIMEOUT seconds, then get 503 + Retry-After.
ADMISSION_LIMIT = max(1, DATABASE_POOL_SIZE - 2)
REQUEST_QUEUE_TIMEOUT = _read("REQUEST_QUEUE_TIMEOUT", _positive_float, 5.0)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if not Path(_db["NAME"]).is_absolute():
        _db["NAME"] = str(BASE_DIR / _db["NAME"])
    _db["OPTIONS"] = {
        # IMMEDIATE takes the write lock when the transaction begins, so two writers queue up
        # instead of one failing with "database is locked" when it upgrades a read lock.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that processes started by the tests (uvicorn, Celery) share it;
    # one per test run, so that two runs side by side do not delete each other's.
    _db["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": DATABASE_POOL_TIMEOUT,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, channel layer, cache -----------------------------------------------------

REDIS_URL = _read("REDIS_URL", lambda raw: _url(raw, ("redis", "rediss", "unix")), None)

if REDIS_URL:
    # capacity: channels_redis queues the pushes to all sockets of one web process under one
    # key, and drops (INFO-logged) beyond `capacity` waiting there; queued pushes expire after
    # 60 s, so this bounds what a stalled or dead process can hold, not throughput.
    # group_expiry: a member not renewed within it leaves its group. Live sockets are renewed
    # by their process's monitor every third of it (lobby.realtime); a crashed process's
    # channels are gone within it, instead of the default day of pushes into nowhere.
    # CHANNEL_LAYER_DROP_RATE (0-1, tests and benchmarks only) drops that share of pushes.
    _drop_rate = _read("CHANNEL_LAYER_DROP_RATE", lambda raw: min(max(float(raw), 0.0), 1.0), 0)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "lobby.realtime.LossyRedisChannelLayer"
            if _drop_rate
            else "lobby.realtime.OneReaderRedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": "relaylobby:channels",
                "capacity": 50_000,
                "group_expiry": 90,
                **({"drop_rate": _drop_rate} if _drop_rate else {}),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "relaylobby",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: eager exactly when there is no broker (Saleor's rule), so unit tests need no Redis.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task's countdown must stay well below this, or the Redis transport delivers it twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis outage must never end a worker: retry the broker for as long as it takes (the default
# gives up after 100 attempts, about 50 minutes, and the worker exits).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Running tasks are left to finish when the broker goes away (Celery 6 will cancel them): the
# threads pool cannot cancel a thread, and every relay task is safe to run again anyway.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Relay tasks wait on Edgegap: they have a queue of their own, served by a threads worker
# (config.stack.WORKERS), so slow answers cannot starve the matcher and housekeeping. Both queues
# are declared, so a worker started without --queues still serves everything.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {"celery": {}, "relays": {}}
CELERY_TASK_ROUTES = {"relays.*": {"queue": "relays"}}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Edgegap ---------------------------------------------------------------------------------

EMULATOR_DEV_TOKEN = "emulator-dev-token"  # noqa: S105  # accepted by the local relay emulator only
EDGEGAP_API_URL = _read("EDGEGAP_API_URL", lambda raw: _url(raw, ("http", "https")), None)
EDGEGAP_API_TOKEN = _secret_from_file("EDGEGAP_API_TOKEN")
EDGEGAP_TIMEOUT = _read("EDGEGAP_TIMEOUT", _positive_float, 10.0)
RELAY_READY_TIMEOUT = _read("RELAY_READY_TIMEOUT", _positive_float, 60.0)
# An Edgegap session that no live session of ours owns is deleted once it has been seen unowned
# for this long (a create whose answer is not stored yet must not be deleted under it).
RELAY_ORPHAN_GRACE = _read("RELAY_ORPHAN_GRACE", _positive_float, 120.0)
RELAY_RECONCILE_INTERVAL = _read("RELAY_RECONCILE_INTERVAL", _positive_float, 60.0)
# Reconciliation deletes only sessions carrying our mark (a webhook URL under PUBLIC_URL). Sessions
# of other environments in the same Edgegap organisation are never touched unless this opts in
# (e.g. a dedicated account whose leftovers from before the mark existed must go).
RELAY_RECONCILE_FOREIGN = _read("RELAY_RECONCILE_FOREIGN", _bool, False)
# Seconds between sweeps that re-drive relay work whose lease ran out (a killed worker, a lost
# task) and fail sessions past their ready deadline.
RELAY_SWEEP_INTERVAL = _read("RELAY_SWEEP_INTERVAL", _positive_float, 5.0)
# Slack on every lease beyond its Edgegap calls (3 x EDGEGAP_TIMEOUT): time a task may sit in the
# broker before the sweep presumes it lost. Too short only costs duplicate (harmless) steps.
RELAY_LEASE_MARGIN = _read("RELAY_LEASE_MARGIN", _positive_float, 15.0)
# This service's own public base URL (e.g. https://lobby.example.com). When set, relay sessions
# are created with a per-session webhook URL under it.
PUBLIC_URL = _read("PUBLIC_URL", lambda raw: _url(raw, ("http", "https")).rstrip("/"), None)


def _is_loopback_url(url):
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Anything but a loopback URL may be Edgegap itself: the emulator's dev token must never be sent
# there, and without PUBLIC_URL our sessions carry no mark, so reconciliation could not tell them
# from another environment's. Refusing here stops every process (web, worker, beat, `check`).
if EDGEGAP_API_URL is None or _is_loopback_url(EDGEGAP_API_URL):
    EDGEGAP_API_TOKEN = EDGEGAP_API_TOKEN or EMULATOR_DEV_TOKEN
else:
    for _name, _value, _why in (
        ("EDGEGAP_API_TOKEN (or EDGEGAP_API_TOKEN_FILE)", EDGEGAP_API_TOKEN,
         "the emulator's dev token only serves the local emulator"),
        ("PUBLIC_URL", PUBLIC_URL, "it marks which relay sessions are this deployment's"),
    ):  # fmt: skip
        if not _value:
            raise ImproperlyConfigured(
                f"{_name} must be set when EDGEGAP_API_URL={EDGEGAP_API_URL!r} is not a"
                f" loopback URL: {_why}"
            )

# --- Lobbies ---------------------------------------------------------------------------------

LOBBY_MAX_PLAYERS = _read("LOBBY_MAX_PLAYERS", _lobby_size, 64)
# A lobby none of whose members has been seen (an API call, an open socket) for this long is
# closed, and its relay session deleted.
LOBBY_ABANDON_AFTER = _read("LOBBY_ABANDON_AFTER", _positive_float, 900.0)
EVENT_RETENTION = _read("EVENT_RETENTION", _positive_float, 86400.0)  # seconds
# A player the host kicked may not rejoin that lobby for this long (seconds).
LOBBY_KICK_COOLDOWN = _read("LOBBY_KICK_COOLDOWN", _positive_float, 600.0)
# Seconds between matcher passes (Celery beat).
MATCHMAKER_INTERVAL = _read("MATCHMAKER_INTERVAL", _positive_float, 1.0)
# Seconds after a result's first report within which the rest may report (docs/ratings.md).
RESULT_REPORT_WINDOW = _read("RESULT_REPORT_WINDOW", _positive_float, 600.0)

CELERY_BEAT_SCHEDULE = {
    "relays-reconcile": {"task": "relays.reconcile", "schedule": RELAY_RECONCILE_INTERVAL},
    # A sweep still queued when the next is due is dropped: they would only repeat each other.
    "relays-sweep": {
        "task": "relays.sweep",
        "schedule": RELAY_SWEEP_INTERVAL,
        "options": {"expires": RELAY_SWEEP_INTERVAL},
    },
    "lobby-close-abandoned": {"task": "lobby.close_abandoned", "schedule": 60.0},
    "lobby-prune-events": {"task": "lobby.prune_events", "schedule": 3600.0},
    "moderation-prune-messages": {"task": "moderation.prune_messages", "schedule": 3600.0},
    "matchmaking-run": {"task": "matchmaking.run", "schedule": MATCHMAKER_INTERVAL},
    "ratings-decide-due": {"task": "ratings.decide_due", "schedule": 30.0},
}

# --- REST framework --------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "lobby.authentication.PlayerTokenAuthentication",
        "lobby.authentication.PlayerSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["lobby.permissions.IsPlayer"],
    "DEFAULT_THROTTLE_CLASSES": ["lobby.throttles.PlayerThrottle", "lobby.throttles.IpThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "player": _read("THROTTLE_PLAYER", _rate, "300/min"),
        "ip": _read("THROTTLE_IP", _rate, "600/min"),
        "guest": _read("THROTTLE_GUEST", _rate, "20/hour"),
        "join_code": _read("THROTTLE_JOIN_CODE", _rate, "30/min"),
        # Chat lines per player (docs/api.md "Chat"), and reports per player.
        "chat": _read("THROTTLE_CHAT", _rate, "20/min"),
        "chat_burst": _read("THROTTLE_CHAT_BURST", _rate, "3/s"),
        "report": _read("THROTTLE_REPORT", _rate, "10/hour"),
    },
    # The API speaks JSON only: bodies are read under the input policy (config/inputs.py), and
    # a client that accepts only HTML gets 406, not the browsable API.
    "DEFAULT_PARSER_CLASSES": ["config.inputs.PolicyJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "lobby.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Relay lobby API",
    "DESCRIPTION": "Lobbies, matchmaking and Edgegap relay assignments for P2P games.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from this host: the docs page works without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "lobby.schema.add_events_endpoint",
        # Last: every operation's error answers, in the error shape (config/openapi.py).
        "config.openapi.document_errors",
    ],
}
# Lobby payloads are small; a client cannot make the server buffer more than this.
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
# Slow clients (config/slowclients.py, uvicorn's protocol): seconds a request may take to send
# its headers, then its body (256 KiB at 10 KB/s fits), before it is answered 408 and closed.
HTTP_HEADER_TIMEOUT = _read("HTTP_HEADER_TIMEOUT", _positive_float, 10.0)
HTTP_BODY_TIMEOUT = _read("HTTP_BODY_TIMEOUT", _positive_float, 30.0)
# Event sockets per web process (lobby/socketcaps.py): a player's oldest beyond this many is
# closed (4001); an address beyond its count gets new ones closed at once (4029).
SOCKETS_PER_PLAYER = _read("SOCKETS_PER_PLAYER", _pool_size, 5)  # 1-1000


def _socket_count(raw):
    value = int(raw)
    if not 1 <= value <= 1_000_000:
        raise ValueError("expected a whole number from 1 to 1000000")
    return value


SOCKETS_PER_IP = _read("SOCKETS_PER_IP", _socket_count, 200)

# --- The rest --------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# servestatic warns on every start when STATIC_ROOT is missing; a read-only deployment has run
# collectstatic already, so failing to create it is fine.
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedStaticFilesStorage"},
}
# In development static files are served straight from the apps: no collectstatic needed.
SERVESTATIC_USE_FINDERS = DEBUG

if not DEBUG:
    SESSION_COOKIE_SECURE = _read("SESSION_COOKIE_SECURE", _bool, True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE


def _seconds(raw):
    value = int(raw)
    if value < 0:
        raise ValueError("expected a whole number of seconds, 0 or more")
    return value


def _proxy_ssl_header(raw):
    # "X-Forwarded-Proto" (the header a TLS-terminating proxy sets to "https") or
    # "X-Forwarded-Proto: https" for another value.
    name, _, value = raw.partition(":")
    if not name.strip() or not all(c.isalnum() or c == "-" for c in name.strip()):
        raise ValueError("expected a header name such as X-Forwarded-Proto")
    return ("HTTP_" + name.strip().upper().replace("-", "_"), value.strip() or "https")


# HTTPS (README "Production"). With DEBUG off the defaults are the safe ones: plain HTTP is
# redirected to HTTPS and browsers are told to stay on HTTPS for a year. The probes and /metrics
# are exempt: load balancers and Prometheus reach a process over plain HTTP inside the network.
# Behind a proxy that terminates TLS, name the header it sets (SECURE_PROXY_SSL_HEADER), or
# every request looks like plain HTTP and is redirected forever; only a proxy that always sets
# (or strips) that header may be named.
SECURE_SSL_REDIRECT = _read("SECURE_SSL_REDIRECT", _bool, not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = _read("SECURE_HSTS_SECONDS", _seconds, 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _read("SECURE_HSTS_INCLUDE_SUBDOMAINS", _bool, False)
SECURE_HSTS_PRELOAD = _read("SECURE_HSTS_PRELOAD", _bool, False)
SECURE_PROXY_SSL_HEADER = _read("SECURE_PROXY_SSL_HEADER", _proxy_ssl_header, None)

# When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>`. Unset, /metrics
# answers anyone only while DEBUG is on; with DEBUG off it refuses everyone (403), and
# `check --deploy` says so.
METRICS_TOKEN = _secret_from_file("METRICS_TOKEN")
METRICS_REQUIRE_TOKEN = not DEBUG  # decided at start-up (the test runner turns DEBUG off later)
# Extra Prometheus collectors (dotted paths of functions returning exposition lines).
METRICS_COLLECTORS = ["config.admission.metrics_lines"]

LOG_LEVEL = _read("LOG_LEVEL", str.upper, "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Celery's per-run lines of routine tasks (the matcher every second) at DEBUG: see the module.
    "filters": {"routine": {"()": "config.logging_filters.RoutineTaskLines", "level": LOG_LEVEL}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["routine"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # requests' urllib3 logs full URLs at DEBUG; they carry no token, but keep it quiet anyway.
        "urllib3": {"level": "WARNING"},
    },
}
