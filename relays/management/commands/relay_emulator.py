"""`python manage.py relay_emulator`: the local Edgegap relay emulator (design.md §7).

Serves Edgegap's relay session REST API on http://HOST:PORT and opens a real UDP relay on
loopback for every ready session, until SIGINT or SIGTERM. The API token it accepts is `--token`,
else the service's own `EDGEGAP_API_TOKEN` setting (from the environment or its `_FILE`), so the
two agree without configuration, else `EMULATOR_DEV_TOKEN`. The knob flags set the initial
behaviour; `POST /_emulator/config` changes it at runtime.
"""

import argparse
import asyncio
import random
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from relays.emulator import Emulator, Knobs


def _optional_int(raw: str) -> int | None:
    return None if raw.lower() == "none" else int(raw)


def _optional_float(raw: str) -> float | None:
    return None if raw.lower() == "none" else float(raw)


class Command(BaseCommand):
    help = "Run the local Edgegap relay emulator: the REST API and a UDP relay on loopback."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        defaults = Knobs()
        parser.add_argument("--host", default="127.0.0.1", help="API address (%(default)s)")
        parser.add_argument("--port", type=int, default=8001, help="API port (%(default)s)")
        parser.add_argument("--token", help="API token to accept (never logged)")
        parser.add_argument("--seed", type=int, help="seed ids, tokens and faults: repeatable runs")
        knobs = parser.add_argument_group("knobs", "also settable through POST /_emulator/config")
        knobs.add_argument(
            "--ready-delay",
            type=float,
            default=defaults.ready_delay,
            help="seconds until a new session is ready (%(default)s)",
        )
        knobs.add_argument(
            "--validation-delay",
            type=float,
            default=defaults.validation_delay,
            help="seconds a UDP peer stays Checking before Valid (%(default)s)",
        )
        knobs.add_argument(
            "--rate-429",
            type=float,
            default=defaults.rate_429,
            help="probability (0..1) that an API call answers 429 (%(default)s)",
        )
        knobs.add_argument(
            "--retry-after",
            type=_optional_int,
            default=defaults.retry_after,
            help='Retry-After seconds on those 429s, or "none" (%(default)s)',
        )
        knobs.add_argument(
            "--rate-5xx",
            type=float,
            default=defaults.rate_5xx,
            help="probability (0..1) that an API call answers 500 or 503 (%(default)s)",
        )
        knobs.add_argument(
            "--slow",
            type=float,
            default=defaults.slow,
            help="seconds to delay an API reply, after the work is done (%(default)s)",
        )
        knobs.add_argument(
            "--slow-rate",
            type=float,
            default=defaults.slow_rate,
            help="probability (0..1) that a reply is delayed by --slow (%(default)s)",
        )
        knobs.add_argument(
            "--lose-rate",
            type=float,
            default=defaults.lose_rate,
            help="probability (0..1) that an API call's work is done but its answer is lost: "
            "the connection closes with no answer or mid-body (%(default)s)",
        )
        knobs.add_argument(
            "--never-ready", action="store_true", help="new sessions never become ready"
        )
        knobs.add_argument(
            "--never-ready-rate",
            type=float,
            default=defaults.never_ready_rate,
            help="probability (0..1) that a new session never becomes ready (%(default)s)",
        )
        knobs.add_argument(
            "--error-state", help="new sessions fail with this error instead of getting ready"
        )
        knobs.add_argument(
            "--host-timeout",
            type=_optional_float,
            default=defaults.host_timeout,
            help="seconds of silence from a host that pinged before its session answers "
            'SessionTimeout, or "none" (%(default)s)',
        )
        knobs.add_argument(
            "--strict",
            action="store_true",
            help="refuse non-public user IPs (400), tie each token to its IP on the relay, and "
            "answer 409 to authorizing an IP already seated; the dev stack (127.0.0.1) needs "
            "it off",
        )
        knobs.add_argument(
            "--page-size",
            type=int,
            default=defaults.page_size,
            help="sessions per page of the list call (%(default)s)",
        )
        knobs.add_argument(
            "--page-past-end",
            choices=("empty", "404", "400"),
            default=defaults.page_past_end,
            help="what a list page past the end answers: an empty page, 404 or 400 (%(default)s)",
        )
        knobs.add_argument(
            "--revoke-answers",
            choices=("204", "200"),
            default=defaults.revoke_answers,
            help="revoke-user answers 204 without body or 200 with the session (%(default)s)",
        )

    def handle(self, *args, host, port, token, seed, **options):
        token = token or getattr(settings, "EDGEGAP_API_TOKEN", None) or settings.EMULATOR_DEV_TOKEN
        try:
            knobs = Knobs().replace({name: options[name] for name in Knobs().as_dict()})
        except ValueError as exc:
            raise CommandError(exc) from None
        emulator = Emulator(token, knobs=knobs, rng=random.Random(seed))
        asyncio.run(self._serve(emulator, host, port))
        self.stdout.write("relay emulator stopped")

    async def _serve(self, emulator: Emulator, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, emulator.stop)

        def listening(base_url: str) -> None:
            self.stdout.write(f"relay emulator listening on {base_url}")
            self.stdout.flush()  # a launcher reading a pipe waits for this line

        try:
            await emulator.serve(host, port, on_listening=listening)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
