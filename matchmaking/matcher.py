"""The matcher: one pure, in-memory pass over a profile's searching tickets (no Django).

    result = form_matches(tickets, rules, now)

``tickets`` are `Ticket` tuples (one per solo player or party), ``rules`` a parsed `Rules` (or
the rules JSON), ``now`` seconds on the same clock as ``Ticket.created_at`` (Unix time, say). The
result holds the matches formed and, for every ticket left searching, an `Explanation`.

What a match guarantees:

- every rule holds under the **strictest** expansion step among its tickets (the lowest step, as
  expansions only relax): a ticket is never matched under rules looser than its own wait earned,
  and a long-waiting ticket's relaxed rules apply once others have waited long enough too;
- ``team_count`` teams of ``min_team_size`` to ``max_team_size`` players (at that step); a party
  (a ticket with several players) is never split across teams or matches;
- teams are balanced on the first ``number_difference`` attribute: groups are placed largest
  party first, then by descending value, each into the team with the fewest players and then the
  lowest total (a party counts its mean once per member);
- with a ``latencies`` rule, the match's region is one where every ticket is within
  ``max_latency`` and within ``difference`` of the others; the host is the ticket with the lowest
  latency there (ties: the older), otherwise the oldest ticket; its first player hosts.

How (near n log n, no pairwise work): tickets are bucketed by their ``string_equality`` values,
with a ``latencies`` rule by their best region, and with an ``intersection`` rule by their most
popular value of the first such rule. Each bucket is sorted by the first ``number_difference``
attribute (by age when there is none). Anchors are taken oldest first (so old tickets get the
first pick when players are short); from its place in the sorted order, an anchor grows a match
outwards, nearest value first (ties: the older), keeping every rule true at each step, until the
match is full or the value window closes. The scan is bounded (``scan_limit`` candidates per
anchor) and matched tickets are unlinked from the sorted order in O(1). Tickets left over get a
second pass in every other region they can play in and under every other value they list, so
players whose best region or most popular value differ can still meet. ``intersection`` is also
checked incrementally (a running intersection), which is what enforces ``overlap`` > 1 and any
further intersection rules. The same input gives the same output in every process.

Explanations are computed after matching from per-bucket counters and one bisect per ticket: the
first rule that, on its own, leaves too few other players for the ticket (player count, each
string, the number window, regions, shared values), or a note that enough players pass each rule
on its own but no group passes them all together.

Ticket ids must be unique and hashable. The pass pauses Python's cyclic garbage collector while
it runs (see `form_matches`). Inputs are assumed validated by
`matchmaking.rules.validate_attributes` (or `merge_party_attributes` for a party) when the ticket
was created; a ticket whose attributes no longer fit the rules (the profile changed under it) is
left unmatched with the validation error as its explanation, rather than failing the pass.
"""

from __future__ import annotations

import gc
import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from heapq import heappop, heappush
from itertools import accumulate
from typing import Any, NamedTuple

from matchmaking.rules import (
    INTERSECTION,
    LATENCIES,
    NUMBER_DIFFERENCE,
    STRING_EQUALITY,
    AttributesError,
    Rules,
    parse_rules,
    validate_attributes,
)
from ratings.skill import BETA, SIGMA, match_quality

INF = math.inf
RATED_KEY = "$rated"  # where a rated ticket carries the mu and sigma its number came from
# Rated queues, among candidates inside the window: how many of the nearest a pick weighs, and
# how much one point of sigma difference counts against one point of mu difference.
SIMILAR_LOOKAHEAD = 5
SIGMA_WEIGHT = 1.0
# The sigma a very uncertain anchor looks for: pairing two of them (a new player is sigma 500)
# predicts a poor match for both, so one less sure than the game is random (beta) seeks
# partners about that sure instead.
SIGMA_KNEE = BETA


class Ticket(NamedTuple):
    """One queued group: a solo player or a whole party.

    ``players`` lists the group's player ids, the party leader first (a party's host candidate);
    ``attributes`` are the validated (for a party: merged) attributes; ``created_at`` is when it
    entered the queue, in seconds on the clock ``now`` uses.
    """

    id: Hashable
    players: tuple[Hashable, ...]
    attributes: Mapping[str, Any]
    created_at: float


class Match(NamedTuple):
    """A formed match. ``teams`` and ``team_players`` are parallel: ticket ids, player ids."""

    teams: tuple[tuple[Hashable, ...], ...]
    team_players: tuple[tuple[Hashable, ...], ...]
    region: str | None  # the latencies rule's region; None without one
    host_ticket: Hashable
    host_player: Hashable
    step: int  # the expansion step whose rules the match satisfies (its tickets' lowest)
    # Predicted match quality (`match_quality`) in a rated queue with two or more teams; else None.
    quality: float | None = None

    @property
    def ticket_ids(self) -> tuple[Hashable, ...]:
        return tuple(tid for team in self.teams for tid in team)


class Explanation(NamedTuple):
    """Why a ticket is still searching.

    ``step`` is its current expansion step (0 = initial rules), ``next_step_in`` the seconds
    until the next one applies (None after the last), ``rule`` the name of the rule that keeps
    it from matching (None when no single rule does), ``message`` a sentence for people, e.g.
    ``number_difference(skill): no 3 other players within 10 of 1520 (found 1)``.
    """

    step: int
    rule: str | None
    message: str
    next_step_in: float | None
    # In a rated queue: the predicted quality against the nearest player still searching.
    quality: float | None = None


class MatchResult(NamedTuple):
    matches: list[Match]
    unmatched: dict[Hashable, Explanation]

    @property
    def matched_ticket_count(self) -> int:
        return sum(len(team) for match in self.matches for team in match.teams)


MAX_MESSAGE = 300  # explanations are stored in a 300-character column


def _g(value: float) -> str:
    return f"{value:g}"


def _clip(text: str, limit: int = 40) -> str:
    # Attribute values are player-supplied (up to 200 characters each): keep messages short.
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _no_others(n: int) -> str:
    return "no other player" if n == 1 else f"no {n} other players"


def form_matches(
    tickets: Iterable[Ticket],
    rules: Rules | Mapping[str, Any],
    now: float,
    *,
    explain: bool = True,
    scan_limit: int | None = None,
) -> MatchResult:
    """Form as many matches as the rules allow from ``tickets`` at time ``now``.

    Pure: reads its arguments only. ``scan_limit`` bounds the candidates an anchor examines
    (default ``4 * max_players + 16``); ``explain=False`` skips the explanations.
    """
    rules = parse_rules(rules)
    tickets = tickets if isinstance(tickets, list) else list(tickets)
    # The pass allocates many small, acyclic containers; with a large heap (100k tickets and
    # their attributes), the cyclic collector's full sweeps cost more than the matching itself
    # (measured: 344 ms -> 77 ms to prepare 100k coop tickets). Nothing here forms a cycle, so
    # pausing the collector for the pass frees nothing later than it would have been freed.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _form_matches(tickets, rules, now, explain, scan_limit)
    finally:
        if gc_was_enabled:
            gc.enable()


def _form_matches(
    tickets: list[Ticket], rules: Rules, now: float, explain: bool, scan_limit: int | None
) -> MatchResult:
    limits = _Limits(rules, scan_limit)
    pool = _Pool(tickets, rules, limits, now)
    grower = _Grower(pool, limits)
    for (_, region, _), members in pool.buckets().items():
        grower.run_bucket(members, region)
    for (_, region, _), members in pool.second_pass_buckets(grower.used):
        grower.run_bucket(members, region)
    unmatched = _explain(pool, limits, grower.used, now) if explain else {}
    return MatchResult(grower.matches, unmatched)


class _Limits:
    """The rules as the pass reads them: names by type, and each limit as a list by step."""

    def __init__(self, rules: Rules, scan_limit: int | None):
        initial = rules.initial
        size = initial.player_count
        self.rules = rules
        self.player_count_name = size.name
        self.team_count = size.team_count
        self.max_team = size.max_team_size
        self.max_players = size.max_players
        self.min_team = [step.player_count.min_team_size for step in rules.steps]
        self.min_players = [step.player_count.min_players for step in rules.steps]
        self.scan_limit = scan_limit if scan_limit is not None else 4 * self.max_players + 16

        self.string_names = [r.name for r in initial.of_type(STRING_EQUALITY)]
        numbers = [r.name for r in initial.of_type(NUMBER_DIFFERENCE)]
        self.intersection_names = [r.name for r in initial.of_type(INTERSECTION)]
        latencies = initial.of_type(LATENCIES)
        self.latency_name = latencies[0].name if latencies else None
        # The first number rule orders each bucket and balances teams; the others are checked.
        self.primary = numbers[0] if numbers else None
        self.extra_numbers = numbers[1:]
        # A primary number taken from a rating brings its sigma: pairing and balance use both.
        self.rated = bool(self.primary) and self.primary in rules.rated

        def by_step(name: str | None, field: str) -> list[float]:
            if name is None:
                return [INF] * len(rules.steps)
            return [getattr(step[name], field) for step in rules.steps]

        self.max_difference = by_step(self.primary, "max_difference")
        self.extra_max_difference = [by_step(n, "max_difference") for n in self.extra_numbers]
        self.overlap = [by_step(n, "overlap") for n in self.intersection_names]
        self.max_latency = by_step(self.latency_name, "max_latency")
        self.latency_difference = by_step(self.latency_name, "difference")


class _Pool:
    """The pass's tickets, prepared once into parallel lists indexed by ticket position.

    A ticket that cannot take part (a party too large for a team, no region within reach, or
    attributes that no longer fit the rules) is not ``valid`` and has its explanation in
    ``pre_explained`` already.
    """

    def __init__(self, tickets: list[Ticket], rules: Rules, limits: _Limits, now: float):
        n = len(tickets)
        self.tickets = tickets
        self.limits = limits
        self.value = [0.0] * n  # the sort/window value: the primary number, else created_at
        self.balance = [0.0] * n  # what team balance sums (0 without a number rule)
        self.size = [1] * n  # players in the ticket
        self.step = [0] * n  # its expansion step now
        self.created = [0.0] * n
        self.latencies: list[Mapping[str, float]] = [{}] * n
        self.value_sets = [[frozenset()] * n for _ in limits.intersection_names]
        self.extra_values = [[0.0] * n for _ in limits.extra_numbers]
        self.string_key: list[Any] = [None] * n  # the string_equality value(s)
        self.valid = [False] * n
        self.pre_explained: dict[int, tuple[str | None, str]] = {}
        self.home_region: list[str | None] = [None] * n  # best region, with a latencies rule
        self.home_value: list[str | None] = [None] * n  # most popular value, with intersection
        # Rated: each ticket's sigma (a party's root-mean-square; a new player's when absent).
        self.sigma = [SIGMA] * n if limits.rated else None
        for i, ticket in enumerate(tickets):
            self._prepare(i, ticket, rules, now)
        if limits.intersection_names:
            self._choose_home_values()
        # Anchor order, oldest first: old tickets get the first pick when players are short.
        self.by_age = sorted(range(n), key=self.created.__getitem__)

    def _prepare(self, i: int, ticket: Ticket, rules: Rules, now: float) -> None:
        limits = self.limits
        created = ticket.created_at
        self.created[i] = created
        step = self.step[i] = rules.step_at(now - created)
        players = self.size[i] = len(ticket.players) or 1
        if players > limits.max_team:
            name = limits.player_count_name
            self.pre_explained[i] = (
                name,
                f"player_count({name}): a party of {players} cannot fit a team of "
                f"at most {limits.max_team}",
            )
            return
        attributes = ticket.attributes
        try:
            if limits.primary:
                number = attributes[limits.primary]
                self.value[i] = number + 0.0
                self.balance[i] = number
                if limits.rated:
                    rated = attributes.get(RATED_KEY)
                    if rated and limits.primary in rated:
                        self.sigma[i] = rated[limits.primary]["sigma"] + 0.0
            else:
                self.value[i] = created
            self.string_key[i] = _string_key(attributes, limits.string_names)
            for k, name in enumerate(limits.extra_numbers):
                self.extra_values[k][i] = attributes[name] + 0.0
            for k, name in enumerate(limits.intersection_names):
                values = attributes[name]
                if isinstance(values, str):
                    raise TypeError
                self.value_sets[k][i] = frozenset(values)
            if limits.latency_name:
                name = limits.latency_name
                latencies = self.latencies[i] = attributes[name]
                best = min(latencies, key=latencies.__getitem__)
                best_ms = latencies[best] + 0.0
                cap = limits.max_latency[step]
                if best_ms > cap:
                    self.pre_explained[i] = (
                        name,
                        f"latencies({name}): no region within {_g(cap)} ms "
                        f"(best: {_clip(best)} {_g(best_ms)} ms)",
                    )
                    return
                self.home_region[i] = best
        except (KeyError, TypeError, ValueError):
            self.pre_explained[i] = _invalid(rules, attributes)
            return
        self.valid[i] = True

    def _choose_home_values(self) -> None:
        # With an intersection rule, a ticket first looks among those sharing its most popular
        # value (as it first looks in its best region): a window check alone would scan past
        # many tickets with nothing in common when values are many.
        sets, valid = self.value_sets[0], self.valid
        popularity: dict[str, int] = defaultdict(int)
        for i, values in enumerate(sets):
            if valid[i]:
                for v in values:
                    popularity[v] += 1
        for i, values in enumerate(sets):
            if valid[i]:
                if len(values) == 1:
                    (self.home_value[i],) = values
                else:  # ties broken by the value itself: frozenset order varies between runs
                    self.home_value[i] = max(values, key=lambda v: (popularity[v], v))

    def buckets(self) -> dict[tuple[Any, str | None, str | None], list[int]]:
        """Valid tickets by (strings, home region, home value), each list oldest first."""
        buckets: dict[Any, list[int]] = {}
        for i in self.by_age:
            if self.valid[i]:
                key = (self.string_key[i], self.home_region[i], self.home_value[i])
                bucket = buckets.get(key)
                if bucket is None:
                    buckets[key] = [i]
                else:
                    bucket.append(i)
        return buckets

    def second_pass_buckets(self, used: list[bool]) -> list[tuple[Any, list[int]]]:
        """Leftovers in every other region they can play in and under every other value they
        list, so players whose best region or most popular value differ can still meet. Only
        buckets that someone joined this way are returned (in a deterministic order)."""
        limits = self.limits
        by_latency = limits.latency_name is not None
        by_value = bool(limits.intersection_names)
        if not (by_latency or by_value):
            return []
        second: dict[Any, list[int]] = defaultdict(list)
        widened: set[Any] = set()
        for i in self.by_age:
            if not self.valid[i] or used[i]:
                continue
            strings, home_region, home_value = (
                self.string_key[i],
                self.home_region[i],
                self.home_value[i],
            )
            if by_latency:
                cap = limits.max_latency[self.step[i]]
                for region, ms in self.latencies[i].items():
                    if ms <= cap:
                        key = (strings, region, home_value)
                        second[key].append(i)
                        if region != home_region:
                            widened.add(key)
            if by_value:
                for v in sorted(self.value_sets[0][i]):  # set order follows the hash seed
                    if v == home_value:
                        if by_latency:
                            continue  # the region loop added the home bucket already
                        second[(strings, home_region, v)].append(i)
                        continue
                    key = (strings, home_region, v)
                    second[key].append(i)
                    widened.add(key)
        # In insertion order, not the set's: deterministic.
        return [(k, m) for k, m in second.items() if k in widened and len(m) > 1]


def _string_key(attributes: Mapping[str, Any], names: list[str]) -> Any:
    """One string (one rule), a tuple of them (several), or None: what a bucket shares."""
    if not names:
        return None
    if len(names) == 1:
        key = attributes[names[0]]
        if not isinstance(key, str):
            raise TypeError
        return key
    key = tuple(attributes[name] for name in names)
    if not all(isinstance(k, str) for k in key):
        raise TypeError
    return key


class _Grower:
    """Forms matches bucket by bucket: each anchor grows a match outwards in value order."""

    def __init__(self, pool: _Pool, limits: _Limits):
        self.pool = pool
        self.limits = limits
        self.used = [False] * len(pool.tickets)
        self.position = [0] * len(pool.tickets)  # index in the bucket being run
        self.matches: list[Match] = []
        # What every scan reads, bound once: unpacking a tuple is cheaper than a dozen
        # attribute lookups per anchor, and a pass has tens of thousands of anchors.
        self._scan = (
            self.used,
            pool.step,
            pool.size,
            pool.created,
            limits.max_difference,
            limits.min_players,
            limits.max_players,
            limits.scan_limit,
        )

    def run_bucket(self, members: list[int], region: str | None) -> None:
        pool, limits = self.pool, self.limits
        size = pool.size
        if sum(size[i] for i in members) < limits.min_players[-1]:
            return
        order = sorted(members, key=pool.value.__getitem__)  # stable: equal values oldest first
        position = self.position
        for p, i in enumerate(order):
            position[i] = p
        # A doubly linked list over the sorted order: matched tickets are unlinked in O(1).
        links = _Links(order, [pool.value[i] for i in order])
        used, step_of, min_players = self.used, pool.step, limits.min_players
        for anchor in members:
            if used[anchor]:
                continue
            chosen, players, step = self._grow(anchor, links, region)
            teams = None
            while players >= min_players[step]:
                teams = self._pack(chosen, players, step)
                if teams is not None or len(chosen) == 1:
                    break
                # Parties that do not fit together: drop the last-added (farthest) group.
                dropped = chosen.pop()
                players -= size[dropped]
                step = min(step_of[c] for c in chosen)
            if teams is None:
                continue
            for c in chosen:
                used[c] = True
                links.unlink(position[c])
            self._emit(chosen, teams, step, region)

    def _grow(self, anchor: int, links: _Links, region: str | None) -> tuple[list[int], int, int]:
        """The anchor's group: nearest value first (ties: the older), every rule kept true at
        each addition, until full, the value window closes, or ``scan_limit`` candidates were
        examined. Returns (group, its players, its step)."""
        used, step_of, size, created, max_difference, min_players, max_players, scan_limit = (
            self._scan
        )
        order, values, left, right = links.order, links.values, links.left, links.right
        end = len(order)
        p = self.position[anchor]
        anchor_value = values[p]
        step = step_of[anchor]
        players = size[anchor]
        window = max_difference[step]
        left_pos, right_pos = left[p], right[p]
        chosen = [anchor]
        if (left_pos < 0 or anchor_value - values[left_pos] > window) and (
            right_pos >= end or values[right_pos] - anchor_value > window
        ):
            # Nobody within the window (common in a sparse queue): skip the scan's setup.
            if players < min_players[step]:
                return chosen, players, step
            left_pos, right_pos = -1, end  # a party that fills the match on its own
        lo = hi = anchor_value
        pool, limits = self.pool, self.limits
        if region is not None:
            latencies = pool.latencies
            max_latency, latency_difference = limits.max_latency, limits.latency_difference
            lat_lo = lat_hi = latencies[anchor][region]
        n_sets = len(limits.intersection_names)
        if n_sets:
            value_sets, overlap = pool.value_sets, limits.overlap
            shared = [value_sets[k][anchor] for k in range(n_sets)]
        n_extra = len(limits.extra_numbers)
        if n_extra:
            extra_values, extra_max = pool.extra_values, limits.extra_max_difference
            extra_lo = [extra_values[k][anchor] for k in range(n_extra)]
            extra_hi = list(extra_lo)
        sigma = pool.sigma
        if sigma is not None:
            anchor_sigma = min(sigma[anchor], SIGMA_KNEE)
            weighed: list[tuple[float, int]] = []  # heap of (cost, position)
            # The value distance to the next ticket on each side (INF past the end).
            to_left = anchor_value - values[left_pos] if left_pos >= 0 else INF
            to_right = values[right_pos] - anchor_value if right_pos < end else INF
        examined = 0
        while players < max_players and examined < scan_limit:
            if sigma is None:
                if left_pos >= 0:
                    if right_pos < end:
                        to_left = anchor_value - values[left_pos]
                        to_right = values[right_pos] - anchor_value
                        go_left = to_left < to_right or (
                            to_left == to_right
                            and created[order[left_pos]] <= created[order[right_pos]]
                        )
                    else:
                        go_left = True
                elif right_pos < end:
                    go_left = False
                else:
                    break
                q = left_pos if go_left else right_pos
                if go_left:
                    left_pos = left[left_pos]
                else:
                    right_pos = right[right_pos]
                c = order[q]
                if used[c]:
                    links.unlink(q)  # taken by another bucket in the second pass: for good
                    continue
            else:
                # Rated: walk outwards, nearest value first, weighing each ticket by its value
                # distance plus its sigma's distance from the anchor's; take the cheapest once
                # no nearer ticket could beat it (a value distance is a lower bound of a cost)
                # or SIMILAR_LOOKAHEAD are weighed. So among equally close candidates, the one
                # of similar uncertainty wins; a far one never beats a near one by much.
                while True:
                    distance = to_left if to_left <= to_right else to_right
                    if distance > window:
                        break  # both sides are outside the window
                    if weighed and (len(weighed) >= SIMILAR_LOOKAHEAD or distance >= weighed[0][0]):
                        break
                    if to_left <= to_right:
                        q = left_pos
                        left_pos = left[q]
                        to_left = anchor_value - values[left_pos] if left_pos >= 0 else INF
                    else:
                        q = right_pos
                        right_pos = right[q]
                        to_right = values[right_pos] - anchor_value if right_pos < end else INF
                    c = order[q]
                    if used[c]:
                        links.unlink(q)
                        continue
                    cost = distance + SIGMA_WEIGHT * abs(sigma[c] - anchor_sigma)
                    heappush(weighed, (cost, q))  # equal costs: the lower value first
                if not weighed:
                    break
                q = heappop(weighed)[1]
                c = order[q]
            examined += 1
            value = values[q]
            new_lo = value if value < lo else lo
            new_hi = value if value > hi else hi
            spread = new_hi - new_lo
            if spread > window:
                if sigma is None:
                    # Every further ticket this side is further away still: close the side.
                    if go_left:
                        left_pos = -1
                    else:
                        right_pos = end
                continue
            c_step = step_of[c]
            new_step = c_step if c_step < step else step
            if new_step != step and spread > max_difference[new_step]:
                continue
            c_size = size[c]
            if players + c_size > max_players:
                continue
            if region is not None:
                ms = latencies[c][region]
                new_lat_lo = ms if ms < lat_lo else lat_lo
                new_lat_hi = ms if ms > lat_hi else lat_hi
                if (
                    new_lat_hi > max_latency[new_step]
                    or new_lat_hi - new_lat_lo > latency_difference[new_step]
                ):
                    continue
            if n_sets:
                new_shared = []
                for k in range(n_sets):
                    common = shared[k] & value_sets[k][c]
                    if len(common) < overlap[k][new_step]:
                        break
                    new_shared.append(common)
                if len(new_shared) < n_sets:
                    continue
            if n_extra:
                if not _extra_numbers_fit(c, extra_values, extra_lo, extra_hi, extra_max, new_step):
                    continue
                for k in range(n_extra):
                    v = extra_values[k][c]
                    if v < extra_lo[k]:
                        extra_lo[k] = v
                    if v > extra_hi[k]:
                        extra_hi[k] = v
            if n_sets:
                shared = new_shared
            if region is not None:
                lat_lo, lat_hi = new_lat_lo, new_lat_hi
            chosen.append(c)
            players += c_size
            lo, hi = new_lo, new_hi
            if new_step != step:
                step = new_step
                window = max_difference[new_step]
        return chosen, players, step

    def _pack(self, chosen: list[int], players: int, step: int) -> list[list[int]] | None:
        """Split the group into teams, or None when its parties cannot fill them."""
        limits = self.limits
        team_count = limits.team_count
        if team_count == 1:
            return [chosen]  # the caller checked min_players and max_players
        if players == team_count and len(chosen) == players:
            return [[c] for c in chosen]  # one solo per team (1v1, free-for-all teams of one)
        if team_count == 2 and self.pool.sigma is not None and len(chosen) <= MAX_SPLIT_GROUPS:
            return _balance_by_quality(chosen, self.pool, limits.max_team, limits.min_team[step])
        return _balance_greedy(
            chosen,
            players,
            self.pool.size,
            self.pool.balance,
            team_count,
            limits.max_team,
            limits.min_team[step],
        )

    def _emit(self, chosen: list[int], teams: list[list[int]], step: int, region: str | None):
        pool = self.pool
        created = pool.created
        host = chosen[0]
        if region is not None:
            latencies = pool.latencies
            best_ms = latencies[host][region]
            for c in chosen:
                ms = latencies[c][region]
                if ms < best_ms or (ms == best_ms and created[c] < created[host]):
                    host, best_ms = c, ms
        else:
            for c in chosen:
                if created[c] < created[host]:
                    host = c
        tickets = pool.tickets
        ids = []
        players = []
        for team in teams:
            ids.append(tuple([tickets[c].id for c in team]))
            players.append(tuple([p for c in team for p in tickets[c].players]))
        host_players = tickets[host].players
        quality = None
        if pool.sigma is not None and len(teams) > 1:
            quality = match_quality(_team_sums(teams, pool))
        self.matches.append(
            Match(
                tuple(ids),
                tuple(players),
                region,
                tickets[host].id,
                host_players[0] if host_players else None,
                step,
                quality,
            )
        )


class _Links:
    """A bucket's tickets in value order, as a doubly linked list over their positions."""

    __slots__ = ("left", "order", "right", "values")

    def __init__(self, order: list[int], values: list[float]):
        self.order = order
        self.values = values
        self.left = list(range(-1, len(order) - 1))
        self.right = list(range(1, len(order) + 1))

    def unlink(self, q: int) -> None:
        before, after = self.left[q], self.right[q]
        if before >= 0:
            self.right[before] = after
        if after < len(self.order):
            self.left[after] = before


def _extra_numbers_fit(c, extra_values, extra_lo, extra_hi, extra_max, step) -> bool:
    for k, values in enumerate(extra_values):
        v = values[c]
        lo = v if v < extra_lo[k] else extra_lo[k]
        hi = v if v > extra_hi[k] else extra_hi[k]
        if hi - lo > extra_max[k][step]:
            return False
    return True


MAX_SPLIT_GROUPS = 12  # two teams from up to 12 groups: at most 2048 splits are tried


def _team_sums(teams: list[list[int]], pool: _Pool) -> list[tuple[float, float, int]]:
    """The teams as the rating model sees them: each one's summed mu, summed sigma squared and
    players. A party's ticket carries its mean mu and root-mean-square sigma, so it counts both
    once per member. (All teams in one call: it runs once per rated match.)"""
    value, sigma, size = pool.value, pool.sigma, pool.size
    sums = []
    for team in teams:
        mu = var = 0.0
        players = 0
        for c in team:
            n = size[c]
            s = sigma[c]
            mu += value[c] * n
            var += s * s * n
            players += n
        sums.append((mu, var, players))
    return sums


def _balance_by_quality(
    chosen: list[int], pool: _Pool, max_team: int, min_team: int
) -> list[list[int]] | None:
    """The two teams the rating model predicts closest: the split of the groups that fits the
    team sizes with the highest `match_quality` (ties: the first found, with the anchor's group
    in the first team). None when no split fits.

    Every split of the same groups has the same players and the same summed sigma squared, so
    `match_quality`'s c^2 is the same for all of them and the quality only falls as the teams'
    summed mu draw apart: the best split is the one with the smallest mu difference, found
    without evaluating the quality (up to 2048 splits) at all."""
    value, size = pool.value, pool.size
    n = len(chosen)
    if (
        n == 4
        and max_team == 2
        and size[chosen[0]] + size[chosen[1]] + size[chosen[2]] + size[chosen[3]] == 4
    ):
        # Four solo players in two teams of two (the common case, thousands a pass): with their
        # values a <= b <= c <= d, a+d against b+c is never further apart than the other splits.
        a, b, c, d = sorted(chosen, key=value.__getitem__)
        return [[a, d], [b, c]] if a == chosen[0] or d == chosen[0] else [[b, c], [a, d]]
    mus = [value[c] * size[c] for c in chosen]
    sizes = [size[c] for c in chosen]
    total_mu, total_players = sum(mus), sum(sizes)
    # The first group always goes to the first team (a split and its mirror are the same match);
    # bit k of ``rest`` puts group k + 1 there too. Each subset's sums extend a smaller one's by
    # its lowest group: one addition per split, not one per group.
    half = 1 << (n - 1)
    rest_mu = [0.0] * half
    rest_players = [0] * half
    best_rest, best_gap = -1, INF
    for rest in range(half):
        if rest:
            low = rest & -rest
            k = low.bit_length()
            rest_mu[rest] = rest_mu[rest ^ low] + mus[k]
            rest_players[rest] = rest_players[rest ^ low] + sizes[k]
        players_a = sizes[0] + rest_players[rest]
        players_b = total_players - players_a
        if min_team <= players_a <= max_team and min_team <= players_b <= max_team:
            gap = abs(2.0 * (mus[0] + rest_mu[rest]) - total_mu)
            if gap < best_gap:
                best_rest, best_gap = rest, gap
    best_mask = (best_rest << 1) | 1
    if best_rest < 0:
        return None
    return [
        [c for k, c in enumerate(chosen) if best_mask >> k & 1],
        [c for k, c in enumerate(chosen) if not best_mask >> k & 1],
    ]


def _balance_greedy(
    chosen: list[int],
    players: int,
    size: list[int],
    balance: list[float],
    team_count: int,
    max_team: int,
    min_team: int,
) -> list[list[int]] | None:
    """Largest parties first (they are the hard part to place), then by descending value, each
    into the team with the fewest players and then the lowest total (a party counts its value
    once per member). None when the parties cannot make ``min_team`` to ``max_team`` teams."""
    order = sorted(chosen, key=balance.__getitem__, reverse=True)
    if players != len(chosen):
        order.sort(key=size.__getitem__, reverse=True)  # stable: keeps value order
    counts = [0] * team_count
    totals = [0.0] * team_count
    teams: list[list[int]] = [[] for _ in range(team_count)]
    for c in order:
        c_size = size[c]
        best = -1
        for t in range(team_count):
            if counts[t] + c_size <= max_team and (
                best < 0
                or counts[t] < counts[best]
                or (counts[t] == counts[best] and totals[t] < totals[best])
            ):
                best = t
        if best < 0:
            return None
        teams[best].append(c)
        counts[best] += c_size
        totals[best] += balance[c] * c_size
    if min(counts) < min_team:
        return None
    return teams


def _invalid(rules: Rules, attributes: Any) -> tuple[str | None, str]:
    try:
        validate_attributes(rules, attributes)
    except AttributesError as exc:
        # Name a rule of the profile (a missing or mistyped attribute) before a leftover key.
        rule_names = {rule.name for rule in rules.initial.rules}
        name = next((k for k in exc.errors if k in rule_names), next(iter(exc.errors)))
        problem = exc.errors[name]
        return (name if name in rule_names else None), (
            f"attributes no longer fit this profile: {name} {problem}"
        )
    return None, "attributes no longer fit this profile"


def _explain(pool: _Pool, limits: _Limits, used: list[bool], now: float) -> dict:
    """An Explanation per unmatched ticket; linear, plus a bisect per ticket."""
    tickets, step_of = pool.tickets, pool.step
    expansion_seconds = limits.rules.expansion_seconds
    last_step = len(expansion_seconds)
    # Seconds to the next step = its time - the wait so far = (its time - now) + created.
    next_at = [seconds - now for seconds in expansion_seconds]
    out: dict[Hashable, Explanation] = {}

    def explanation(i: int, rule: str | None, message: str) -> Explanation:
        step = step_of[i]
        next_in = None if step >= last_step else next_at[step] + tickets[i].created_at
        return Explanation(step, rule, message[:MAX_MESSAGE], next_in)

    for i, (rule, message) in pool.pre_explained.items():
        out[tickets[i].id] = explanation(i, rule, message)
    leftovers = [i for i in range(len(tickets)) if pool.valid[i] and not used[i]]
    census = _Census(pool, limits, leftovers)
    for i in leftovers:
        rule, message = census.blocker(i)
        quality = census.nearest_quality(i) if pool.sigma is not None else None
        if quality is not None:
            message = f"{message}; nearest player: predicted quality {quality:.2f}"
        out[tickets[i].id] = explanation(i, rule, message)._replace(quality=quality)
    return out


class _Census:
    """Who is left after matching, counted per rule: each rule on its own, per string group."""

    def __init__(self, pool: _Pool, limits: _Limits, leftovers: list[int]):
        self.pool, self.limits = pool, limits
        size, string_key = pool.size, pool.string_key
        names = limits.string_names
        self.total_players = 0
        self.per_string: list[dict[Any, int]] = [defaultdict(int) for _ in names]
        groups: dict[Any, list[int]] = defaultdict(list)
        for i in leftovers:
            players = size[i]
            self.total_players += players
            key = string_key[i]
            if len(names) == 1:
                self.per_string[0][key] += players
            else:
                for k in range(len(names)):
                    self.per_string[k][key[k]] += players
            groups[key].append(i)
        self.group_players = {key: sum(size[i] for i in m) for key, m in groups.items()}
        # Per string group: sorted values with cumulative players (the window by bisect),
        # players per reachable region, players per value of each intersection rule.
        self.windows: dict[Any, tuple[list[float], list[int]]] = {}
        self.ordered: dict[Any, list[int]] = {}  # rated: each group's tickets in value order
        self.regions: dict[Any, dict[str, int]] = {}
        self.values: dict[Any, list[dict[str, int]]] = {}
        for key, members in groups.items():
            if limits.primary:
                ordered = sorted(members, key=pool.value.__getitem__)
                cumulative = [0, *accumulate(size[i] for i in ordered)]
                self.windows[key] = ([pool.value[i] for i in ordered], cumulative)
                if pool.sigma is not None:
                    self.ordered[key] = ordered
            if limits.latency_name:
                counter: dict[str, int] = defaultdict(int)
                for i in members:
                    cap = limits.max_latency[pool.step[i]]
                    for region, ms in pool.latencies[i].items():
                        if ms <= cap:
                            counter[region] += size[i]
                self.regions[key] = counter
            if limits.intersection_names:
                per_rule = []
                for sets in pool.value_sets:
                    counter = defaultdict(int)
                    for i in members:
                        for v in sets[i]:
                            counter[v] += size[i]
                    per_rule.append(counter)
                self.values[key] = per_rule

    def blocker(self, i: int) -> tuple[str | None, str]:
        """The first rule that on its own leaves too few others for ticket ``i``, else a note
        that no group passes every rule together."""
        pool, limits = self.pool, self.limits
        step = pool.step[i]
        players = pool.size[i]
        min_team = limits.min_team[step]
        # A party fills (part of) one team, so the other teams need players of their own.
        needed = max(limits.min_players[step] - players, (limits.team_count - 1) * min_team)
        key = pool.string_key[i]
        for check in (
            self._player_count,
            self._strings,
            self._window,
            self._regions,
            self._shared_values,
        ):
            found = check(i, key, step, players, needed)
            if found is not None:
                return found
        return None, (
            f"no match yet: other players pass each rule on its own, but no group of "
            f"{needed + players} passes them all together (latency spread, party sizes, "
            f"or newer tickets' stricter rules)"
        )

    def nearest_quality(self, i: int) -> float | None:
        """Predicted quality of ticket ``i``'s player against the nearest in value of those
        still searching with the same strings (player against player: a hint of what waiting
        longer would bring, not a team's figure)."""
        key = self.pool.string_key[i]
        values, _ = self.windows[key]
        ordered = self.ordered[key]
        v = self.pool.value[i]
        p = bisect_left(values, v)
        nearest, distance = -1, INF
        for q in range(max(0, p - 2), min(len(ordered), p + 3)):
            j = ordered[q]
            if j != i and abs(values[q] - v) < distance:
                nearest, distance = j, abs(values[q] - v)
        if nearest < 0:
            return None
        sigma = self.pool.sigma
        return match_quality(
            [
                (v, sigma[i] * sigma[i], 1),
                (self.pool.value[nearest], sigma[nearest] * sigma[nearest], 1),
            ]
        )

    def _player_count(self, i, key, step, players, needed):
        found = self.total_players - players
        if found < needed:
            name = self.limits.player_count_name
            return name, f"player_count({name}): {_no_others(needed)} searching (found {found})"
        return None

    def _strings(self, i, key, step, players, needed):
        names = self.limits.string_names
        for k, name in enumerate(names):
            value = key if len(names) == 1 else key[k]
            found = self.per_string[k][value] - players
            if found < needed:
                shown = _clip(repr(value), 60)
                return name, (
                    f"string_equality({name}): {_no_others(needed)} with {name} {shown} "
                    f"(found {found})"
                )
        if len(names) > 1:
            found = self.group_players[key] - players
            if found < needed:
                joined = ", ".join(names)
                return names[0], (
                    f"string_equality({joined}): {_no_others(needed)} with the same "
                    f"{joined} (found {found})"
                )
        return None

    def _window(self, i, key, step, players, needed):
        name = self.limits.primary
        if not name:
            return None
        values, cumulative = self.windows[key]
        window = self.limits.max_difference[step]
        v = self.pool.value[i]
        found = (
            cumulative[bisect_right(values, v + window)]
            - cumulative[bisect_left(values, v - window)]
            - players
        )
        if found < needed:
            return name, (
                f"number_difference({name}): {_no_others(needed)} within {window:g} of "
                f"{v:g} (found {found})"
            )
        return None

    def _regions(self, i, key, step, players, needed):
        name = self.limits.latency_name
        if not name:
            return None
        cap = self.limits.max_latency[step]
        counter = self.regions[key]
        best_region, found = None, -1
        for region, ms in self.pool.latencies[i].items():
            if ms <= cap and counter[region] - players > found:
                best_region, found = region, counter[region] - players
        if found < needed:
            return name, (
                f"latencies({name}): {_no_others(needed)} within {_g(cap)} ms of a "
                f"region this ticket can use (found {found} in {_clip(str(best_region))})"
            )
        return None

    def _shared_values(self, i, key, step, players, needed):
        for k, name in enumerate(self.limits.intersection_names):
            mine = self.pool.value_sets[k][i]
            found = max(self.values[key][k][v] for v in mine) - players
            if found < needed:
                listed = sorted(mine)
                shown = ", ".join(_clip(v) for v in listed[:5]) + (", …" if len(listed) > 5 else "")
                return name, (
                    f"intersection({name}): {_no_others(needed)} sharing a value with "
                    f"[{shown}] (found {found})"
                )
        return None
