"""Benchmark of one matcher pass (`matchmaking.matcher.form_matches`) over synthetic queues.

Run from the repository root:

    .venv/bin/python -m bench.matchmaking            # the figures in bench/RESULTS.md
    .venv/bin/python -m bench.matchmaking --sizes 1000 10000 --runs 3

Three profiles, each with expansions, and tickets aged 0-120 s so every expansion step is present:

- duel: 1v1 by skill (number_difference);
- squad: 2 teams of 2 with a mode (string_equality), skill and region latencies over 6 regions;
  a quarter of the tickets are 2-player parties;
- coop: one team of 4 with maps (intersection, 1-3 of 8 maps per ticket) and a difficulty
  string; parties of 1 to 4 players.

Two stress rows follow, each alone at the largest size: coop-64maps (1-3 of 64 maps per
ticket, so few neighbours share a map) and duel-sparse (skills spread over a billion points, so
almost nothing matches and nearly every ticket is scanned, then explained).

"mixed N" splits N tickets evenly over the three profiles and times the whole pass (three
`form_matches` calls, as the matcher task runs each profile); "<profile> N" runs one profile
alone on N tickets. Each figure is over ``--runs`` repetitions on the same input: the best and
the median wall time (time.perf_counter), explanations included. Ticket generation is not timed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

if not __package__:  # run as a file: the script's folder would shadow the matchmaking package
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

from matchmaking.matcher import RATED_KEY, Ticket, form_matches
from matchmaking.rules import parse_rules
from ratings.skill import match_quality

REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "asia-east", "sa-east"]
MAPS = ["harbor", "dust", "canyon", "mill", "station", "ridge", "vault", "tundra"]

PROFILES = {
    "duel": {
        "initial": {
            "match_size": {
                "type": "player_count",
                "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
            },
            "skill": {"type": "number_difference", "attributes": {"max_difference": 50}},
        },
        "expansions": {
            "20": {"skill": {"attributes": {"max_difference": 150}}},
            "60": {"skill": {"attributes": {"max_difference": 400}}},
        },
    },
    "squad": {
        "initial": {
            "match_size": {
                "type": "player_count",
                "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
            },
            "mode": {"type": "string_equality"},
            "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
            "beacons": {"type": "latencies", "attributes": {"max_latency": 120, "difference": 60}},
        },
        "expansions": {
            "30": {
                "skill": {"attributes": {"max_difference": 250}},
                "beacons": {"attributes": {"max_latency": 200, "difference": 100}},
            },
            "90": {"match_size": {"attributes": {"min_team_size": 1}}},
        },
    },
    "coop": {
        "initial": {
            "match_size": {
                "type": "player_count",
                "attributes": {"team_count": 1, "min_team_size": 4, "max_team_size": 4},
            },
            "difficulty": {"type": "string_equality"},
            "maps": {"type": "intersection", "attributes": {"overlap": 1}},
        },
        "expansions": {"60": {"match_size": {"attributes": {"min_team_size": 3}}}},
    },
}

# Rated queues (issue 14): the number comes from a rating, each ticket carries its sigma.
RATED = {
    "rated-1v1": {
        "initial": {
            "match_size": {
                "type": "player_count",
                "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
            },
            "skill": {
                "type": "number_difference",
                "rating": "bench-1v1",
                "attributes": {"max_difference": 50},
            },
        },
        "expansions": {
            "20": {"skill": {"attributes": {"max_difference": 150}}},
            "60": {"skill": {"attributes": {"max_difference": 400}}},
        },
    },
    "rated-2v2": {
        "initial": {
            "match_size": {
                "type": "player_count",
                "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
            },
            "skill": {
                "type": "number_difference",
                "rating": "bench-2v2",
                "attributes": {"max_difference": 100},
            },
        },
        "expansions": {
            "20": {"skill": {"attributes": {"max_difference": 250}}},
            "60": {"skill": {"attributes": {"max_difference": 500}}},
        },
    },
}

STRESS = {"coop-64maps": "coop", "duel-sparse": "duel"}  # row -> the profile whose rules it uses
MANY_MAPS = [f"map-{k:02d}" for k in range(64)]

NOW = 1_800_000_000.0


def _party(rng: random.Random, weights: list[float]) -> int:
    return rng.choices(range(1, len(weights) + 1), weights)[0]


def _beacons(rng: random.Random) -> dict[str, int]:
    home = rng.randrange(len(REGIONS))
    return {
        region: rng.randint(8, 60) if k == home else rng.randint(50, 260)
        for k, region in enumerate(REGIONS)
    }


def make_tickets(profile: str, count: int, seed: int) -> list[Ticket]:
    """``count`` tickets for ``profile`` (parties count as one ticket), aged 0-120 s."""
    rng = random.Random(f"{seed}-{profile}")
    tickets = []
    for i in range(count):
        if profile == "duel":
            players, attrs = 1, {"skill": round(rng.gauss(1500, 300))}
        elif profile == "duel-sparse":
            players, attrs = 1, {"skill": rng.randrange(1_000_000_000)}
        elif profile == "squad":
            players = _party(rng, [3, 1])
            attrs = {
                "mode": rng.choices(["ctf", "tdm", "koth"], [50, 35, 15])[0],
                "skill": round(rng.gauss(1500, 300)),
                "beacons": _beacons(rng),
            }
        else:
            players = _party(rng, [50, 20, 15, 15])
            attrs = {
                "difficulty": rng.choices(["normal", "hard", "nightmare"], [60, 30, 10])[0],
                "maps": rng.sample(
                    MANY_MAPS if profile == "coop-64maps" else MAPS, rng.randint(1, 3)
                ),
            }
        tickets.append(
            Ticket(
                id=f"{profile}-{i}",
                players=tuple(f"{profile}-{i}-p{k}" for k in range(players)),
                attributes=attrs,
                created_at=NOW - rng.uniform(0, 120),
            )
        )
    return tickets


def load_baseline(rev: str) -> types.ModuleType:
    """``matchmaking/matcher.py`` as it was at git revision ``rev``, as a module of its own."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:matchmaking/matcher.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"matcher_at_{rev}")
    module.__file__ = f"{rev}:matchmaking/matcher.py"
    sys.modules[module.__name__] = module  # dataclasses and NamedTuple look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def make_rated_tickets(profile: str, count: int, seed: int) -> list[Ticket]:
    """Rated tickets: players mu ~ N(1500, 300), sigma ~ U(50, 350); in rated-2v2 a quarter of
    the tickets are 2-player parties (mean mu, root-mean-square sigma, as the server merges
    them). Aged 0-120 s."""
    rng = random.Random(f"{seed}-{profile}")
    tickets = []
    for i in range(count):
        players = 2 if profile == "rated-2v2" and rng.random() < 0.25 else 1
        mus = [rng.gauss(1500, 300) for _ in range(players)]
        sigmas = [rng.uniform(50, 350) for _ in range(players)]
        mu = sum(mus) / players
        sigma = (sum(s * s for s in sigmas) / players) ** 0.5
        tickets.append(
            Ticket(
                id=f"{profile}-{i}",
                players=tuple(f"{profile}-{i}-p{k}" for k in range(players)),
                attributes={"skill": mu, RATED_KEY: {"skill": {"mu": mu, "sigma": sigma}}},
                created_at=NOW - rng.uniform(0, 120),
            )
        )
    return tickets


def qualities(result, tickets: list[Ticket]) -> list[float]:
    """Each match's predicted quality, computed here from the tickets (so a matcher that does
    not know sigma, like --baseline, is judged the same way)."""
    by_id = {t.id: t for t in tickets}

    def sums(team):
        mu = var = 0.0
        players = 0
        for tid in team:
            t = by_id[tid]
            n = len(t.players)
            rated = t.attributes[RATED_KEY]["skill"]
            mu += rated["mu"] * n
            var += rated["sigma"] ** 2 * n
            players += n
        return mu, var, players

    return [match_quality([sums(team) for team in m.teams]) for m in result.matches]


def _quality_row(label: str, tickets: list[Ticket], timing: tuple) -> str:
    best, median, result, _ = timing
    q = sorted(qualities(result, tickets))
    mean = statistics.fmean(q) if q else 0.0
    p5 = q[int(0.05 * (len(q) - 1))] if q else 0.0
    matched = result.matched_ticket_count / len(tickets)
    return (
        f"| {label:<9} | {len(tickets):>7,} | {best * 1000:>9.1f} | {median * 1000:>9.1f} | "
        f"{matched:>7.1%} | {mean:.3f} | {p5:.3f} |"
    )


def _time(fn, runs: int, baseline=None) -> tuple[float, float, object, list[float]]:
    """Best and median of ``runs`` calls of ``fn``; with ``baseline``, each run of ``fn`` is
    followed by one of ``baseline`` (interleaved, so both see the same machine load), whose
    times come back as the fourth value."""
    times, base_times, result = [], [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if baseline is not None:
            start = time.perf_counter()
            baseline()
            base_times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result, base_times


def _row(label: str, tickets: int, timing: tuple, results: list) -> str:
    best, median, _, base_times = timing
    matches = sum(len(r.matches) for r in results)
    matched = sum(r.matched_ticket_count for r in results)
    row = (
        f"| {label:<12} | {tickets:>7,} | {best * 1000:>9.1f} | {median * 1000:>9.1f} | "
        f"{matches:>7,} | {matched:>7,} ({matched / tickets:>4.0%}) |"
    )
    if base_times:
        base_best, base_median = min(base_times), statistics.median(base_times)
        row += (
            f" {base_best * 1000:>9.1f} | {base_median * 1000:>9.1f} | "
            f"{median / base_median:>5.2f} |"
        )
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--only-rated", action="store_true", help="only the rated queues' quality table"
    )
    parser.add_argument(
        "--no-single", action="store_true", help="skip each profile alone at the largest size"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time matchmaking/matcher.py at this git revision, interleaved run by run",
    )
    args = parser.parse_args(argv)
    base = load_baseline(args.baseline) if args.baseline else None

    rules = {name: parse_rules(data) for name, data in PROFILES.items()}
    print(
        f"# {datetime.date.today()} · Python {platform.python_version()} · "
        f"nproc {os.cpu_count()} · {platform.machine()} · runs {args.runs} · seed {args.seed} · "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        + (f" · baseline {args.baseline}" if base else "")
    )
    header = "| pass         | tickets |   best ms | median ms | matches | tickets matched |"
    rule = "|--------------|--------:|----------:|----------:|--------:|----------------:|"
    if base:
        header += " base best | base med. | ratio |"
        rule += "----------:|----------:|------:|"
    print(header)
    print(rule)

    for size in [] if args.only_rated else args.sizes:
        share = [size // 3 + (1 if k < size % 3 else 0) for k in range(3)]
        queues = {
            name: make_tickets(name, count, args.seed)
            for name, count in zip(PROFILES, share, strict=True)
        }

        def one_pass(queues=queues, run=form_matches):
            return [run(queues[name], rules[name], NOW) for name in PROFILES]

        timing = _time(
            one_pass, args.runs, base and (lambda q=queues: one_pass(q, base.form_matches))
        )
        print(_row("mixed", size, timing, timing[2]), flush=True)

    if not (args.no_single or args.only_rated):
        size = max(args.sizes)
        for name in [*PROFILES, *STRESS]:
            tickets = make_tickets(name, size, args.seed)
            profile_rules = rules[STRESS.get(name, name)]
            timing = _time(
                lambda t=tickets, r=profile_rules: form_matches(t, r, NOW),
                args.runs,
                base and (lambda t=tickets, r=profile_rules: base.form_matches(t, r, NOW)),
            )
            print(_row(name, size, timing, [timing[2]]), flush=True)

    print()
    print("| rated     | tickets |   best ms | median ms | matched | mean q | p5 q  | ratio |")
    print("|-----------|--------:|----------:|----------:|--------:|-------:|------:|------:|")
    for name, data in RATED.items():
        rated_rules = parse_rules(data)
        for size in args.sizes:
            tickets = make_rated_tickets(name, size, args.seed)
            # Interleaved with the baseline run for run (both see the same load); "ratio" is
            # today's median over the baseline's.
            timing = _time(
                lambda t=tickets, r=rated_rules: form_matches(t, r, NOW),
                args.runs,
                base and (lambda t=tickets, r=rated_rules: base.form_matches(t, r, NOW)),
            )
            base_times = timing[3]
            ratio = f" {timing[1] / statistics.median(base_times):>5.2f} |" if base else ""
            print(_quality_row(name, tickets, timing) + ratio, flush=True)
            if base:
                base_result = base.form_matches(tickets, rated_rules, NOW)
                base_timing = (min(base_times), statistics.median(base_times), base_result, [])
                print(_quality_row("  baseline", tickets, base_timing), flush=True)
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
