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

INF = math.inf


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
    steps = rules.steps
    nsteps = len(steps)
    step_times = [s.after_seconds for s in steps[1:]]
    initial = steps[0]
    pc0 = initial.player_count
    team_count, max_team = pc0.team_count, pc0.max_team_size
    max_players = team_count * max_team
    min_team_by_step = [s.player_count.min_team_size for s in steps]
    min_players_by_step = [team_count * m for m in min_team_by_step]
    limit = scan_limit if scan_limit is not None else 4 * max_players + 16

    def per_step(name: str, field: str) -> list[float]:
        return [getattr(s[name], field) for s in steps]

    string_names = [r.name for r in initial.of_type(STRING_EQUALITY)]
    number_names = [r.name for r in initial.of_type(NUMBER_DIFFERENCE)]
    inter_names = [r.name for r in initial.of_type(INTERSECTION)]
    lat_rules = initial.of_type(LATENCIES)
    lat_name = lat_rules[0].name if lat_rules else None
    primary = number_names[0] if number_names else None
    extra_numbers = number_names[1:]
    md_by_step = per_step(primary, "max_difference") if primary else [INF] * nsteps
    extra_md = [per_step(name, "max_difference") for name in extra_numbers]
    overlap_by_step = [per_step(name, "overlap") for name in inter_names]
    maxlat_by_step = per_step(lat_name, "max_latency") if lat_name else [INF] * nsteps
    ldiff_by_step = per_step(lat_name, "difference") if lat_name else [INF] * nsteps

    n = len(tickets)
    skill = [0.0] * n  # the sort/window value: primary number, else created_at
    balance = [0.0] * n  # what team balance sums (0 without a number rule)
    size = [1] * n
    level = [0] * n
    created = [0.0] * n
    lats: list[Mapping[str, float]] = [{}] * n
    inter_sets = [[frozenset()] * n for _ in inter_names]
    extra_vals = [[0.0] * n for _ in extra_numbers]
    skey: list[Any] = [None] * n
    valid = [False] * n
    used = [False] * n
    pre_explained: dict[int, tuple[str | None, str]] = {}
    bregion: list[str | None] = [None] * n  # best region, with a latencies rule
    bvalue: list[str | None] = [None] * n  # most popular value, with an intersection rule

    one_string = string_names[0] if len(string_names) == 1 else None
    for i, t in enumerate(tickets):
        c = t.created_at
        created[i] = c
        wait = now - c
        lv = bisect_right(step_times, wait) if step_times else 0
        level[i] = lv
        nplayers = len(t.players) or 1
        size[i] = nplayers
        if nplayers > max_team:
            pre_explained[i] = (
                pc0.name,
                f"player_count({pc0.name}): a party of {nplayers} cannot fit a team of "
                f"at most {max_team}",
            )
            continue
        a = t.attributes
        try:
            if primary:
                v = a[primary]
                skill[i] = v + 0.0
                balance[i] = v
            else:
                skill[i] = c
            if one_string:
                key = a[one_string]
                if not isinstance(key, str):
                    raise TypeError
            elif string_names:
                key = tuple(a[s] for s in string_names)
                if not all(isinstance(k, str) for k in key):
                    raise TypeError
            else:
                key = None
            skey[i] = key
            for k, name in enumerate(extra_numbers):
                extra_vals[k][i] = a[name] + 0.0
            for k, name in enumerate(inter_names):
                values = a[name]
                if isinstance(values, str):
                    raise TypeError
                inter_sets[k][i] = frozenset(values)
            if lat_name:
                lat = a[lat_name]
                lats[i] = lat
                best = min(lat, key=lat.__getitem__)
                best_ms = lat[best] + 0.0
                if best_ms > maxlat_by_step[lv]:
                    pre_explained[i] = (
                        lat_name,
                        f"latencies({lat_name}): no region within {_g(maxlat_by_step[lv])} ms "
                        f"(best: {_clip(best)} {_g(best_ms)} ms)",
                    )
                    continue
                bregion[i] = best
        except (KeyError, TypeError, ValueError):
            pre_explained[i] = _invalid(rules, t.attributes)
            continue
        valid[i] = True

    # With an intersection rule, a ticket first looks among those sharing its most popular value
    # (as it first looks in its best region): a window check alone would scan past many
    # tickets with nothing in common when values are many.
    inter0 = inter_sets[0] if inter_names else None
    if inter0 is not None:
        popularity: dict[str, int] = defaultdict(int)
        for i in range(n):
            if valid[i]:
                for v in inter0[i]:
                    popularity[v] += 1
        pop_key = popularity.__getitem__
        for i in range(n):
            if valid[i]:
                values = inter0[i]
                if len(values) == 1:
                    (bvalue[i],) = values
                else:  # ties broken by the value itself: frozenset order varies between runs
                    bvalue[i] = max(values, key=lambda v: (pop_key(v), v))

    # Buckets list their tickets oldest first: that is the anchor order (fairness).
    by_age = sorted(range(n), key=created.__getitem__)
    buckets: dict[Any, list[int]] = {}
    for i in by_age:
        if valid[i]:
            key = (skey[i], bregion[i], bvalue[i])
            b = buckets.get(key)
            if b is None:
                buckets[key] = [i]
            else:
                b.append(i)

    matches: list[Match] = []
    pos = [0] * n
    loosest_min_players = min_players_by_step[-1]
    n_inter = len(inter_names)
    n_extra = len(extra_numbers)

    def pack(chosen: list[int], cnt: int, lv: int) -> list[list[int]] | None:
        min_team = min_team_by_step[lv]
        if team_count == 1:
            return [chosen]  # the caller checked min_players and max_players
        if cnt == team_count and len(chosen) == cnt:
            return [[c] for c in chosen]  # one solo per team (1v1, free-for-all teams of one)
        # Largest parties first (they are the hard part to place), then by descending value.
        order = sorted(chosen, key=balance.__getitem__, reverse=True)
        if cnt != len(chosen):
            order.sort(key=size.__getitem__, reverse=True)  # stable: keeps value order
        if team_count == 2:  # the common case, unrolled
            a_team: list[int] = []
            b_team: list[int] = []
            a_cnt = b_cnt = 0
            a_tot = b_tot = 0.0
            for c in order:
                sz = size[c]
                a_fits = a_cnt + sz <= max_team
                b_fits = b_cnt + sz <= max_team
                if a_fits and (not b_fits or a_cnt < b_cnt or (a_cnt == b_cnt and a_tot <= b_tot)):
                    a_team.append(c)
                    a_cnt += sz
                    a_tot += balance[c] * sz
                elif b_fits:
                    b_team.append(c)
                    b_cnt += sz
                    b_tot += balance[c] * sz
                else:
                    return None
            if a_cnt < min_team or b_cnt < min_team:
                return None
            return [a_team, b_team]
        counts = [0] * team_count
        totals = [0.0] * team_count
        teams: list[list[int]] = [[] for _ in range(team_count)]
        for c in order:
            sz = size[c]
            best = -1
            for t_ in range(team_count):
                if counts[t_] + sz <= max_team and (
                    best < 0
                    or counts[t_] < counts[best]
                    or (counts[t_] == counts[best] and totals[t_] < totals[best])
                ):
                    best = t_
            if best < 0:
                return None
            teams[best].append(c)
            counts[best] += sz
            totals[best] += balance[c] * sz
        if min(counts) < min_team:
            return None
        return teams

    def emit(chosen: list[int], teams: list[list[int]], lv: int, region: str | None) -> None:
        host = chosen[0]
        if region is not None:
            best_ms = lats[host][region]
            for c in chosen:
                ms = lats[c][region]
                if ms < best_ms or (ms == best_ms and created[c] < created[host]):
                    host, best_ms = c, ms
        else:
            for c in chosen:
                if created[c] < created[host]:
                    host = c
        tk = tickets
        ids = []
        players = []
        for team in teams:
            ids.append(tuple([tk[c].id for c in team]))
            players.append(tuple([p for c in team for p in tk[c].players]))
        host_players = tk[host].players
        matches.append(
            Match(
                tuple(ids),
                tuple(players),
                region,
                tk[host].id,
                host_players[0] if host_players else None,
                lv,
            )
        )

    def run_bucket(members: list[int], region: str | None) -> None:
        total = 0
        for i in members:
            total += size[i]
        if total < loosest_min_players:
            return
        srt = sorted(members, key=skill.__getitem__)  # stable: equal values stay oldest first
        m = len(srt)
        for p, i in enumerate(srt):
            pos[i] = p
        left = list(range(-1, m - 1))
        right = list(range(1, m + 1))
        sk = [skill[i] for i in srt]
        _used, _level, _size, _md = used, level, size, md_by_step
        for a in members:
            if _used[a]:
                continue
            p = pos[a]
            sa = sk[p]
            lv = _level[a]
            cnt = _size[a]
            mdv = _md[lv]
            lp = left[p]
            rp = right[p]
            if (lp < 0 or sa - sk[lp] > mdv) and (rp >= m or sk[rp] - sa > mdv):
                # Nobody within the window (common in a sparse queue): skip the scan's setup.
                if cnt < min_players_by_step[lv]:
                    continue
                lp, rp = -1, m  # a party that fills the match on its own
            lo = hi = sa
            chosen = [a]
            if region is not None:
                llo = lhi = lats[a][region]
            if n_inter:
                cur = [inter_sets[k][a] for k in range(n_inter)]
            if n_extra:
                elo = [extra_vals[k][a] for k in range(n_extra)]
                ehi = list(elo)
            examined = 0
            while cnt < max_players and examined < limit:
                if lp >= 0:
                    if rp < m:
                        dl = sa - sk[lp]
                        dr = sk[rp] - sa
                        go_left = dl < dr or (dl == dr and created[srt[lp]] <= created[srt[rp]])
                    else:
                        go_left = True
                elif rp < m:
                    go_left = False
                else:
                    break
                q = lp if go_left else rp
                if go_left:
                    lp = left[lp]
                else:
                    rp = right[rp]
                c = srt[q]
                if _used[c]:
                    # Taken by another bucket in the second pass: unlink it for good.
                    lq, rq = left[q], right[q]
                    if lq >= 0:
                        right[lq] = rq
                    if rq < m:
                        left[rq] = lq
                    continue
                examined += 1
                sc = sk[q]
                nlo = sc if sc < lo else lo
                nhi = sc if sc > hi else hi
                spread = nhi - nlo
                if spread > mdv:
                    # Every further ticket this side is further away still: close the side.
                    if go_left:
                        lp = -1
                    else:
                        rp = m
                    continue
                lc = _level[c]
                nl = lc if lc < lv else lv
                if nl != lv and spread > _md[nl]:
                    continue
                sz = _size[c]
                if cnt + sz > max_players:
                    continue
                if region is not None:
                    lcms = lats[c][region]
                    nllo = lcms if lcms < llo else llo
                    nlhi = lcms if lcms > lhi else lhi
                    if nlhi > maxlat_by_step[nl] or nlhi - nllo > ldiff_by_step[nl]:
                        continue
                if n_inter:
                    new_cur = []
                    ok = True
                    for k in range(n_inter):
                        s_ = cur[k] & inter_sets[k][c]
                        if len(s_) < overlap_by_step[k][nl]:
                            ok = False
                            break
                        new_cur.append(s_)
                    if not ok:
                        continue
                if n_extra:
                    ok = True
                    for k in range(n_extra):
                        v = extra_vals[k][c]
                        vlo = v if v < elo[k] else elo[k]
                        vhi = v if v > ehi[k] else ehi[k]
                        if vhi - vlo > extra_md[k][nl]:
                            ok = False
                            break
                    if not ok:
                        continue
                    for k in range(n_extra):
                        v = extra_vals[k][c]
                        if v < elo[k]:
                            elo[k] = v
                        if v > ehi[k]:
                            ehi[k] = v
                if n_inter:
                    cur = new_cur
                if region is not None:
                    llo, lhi = nllo, nlhi
                chosen.append(c)
                cnt += sz
                lo, hi = nlo, nhi
                if nl != lv:
                    lv = nl
                    mdv = _md[nl]
            teams = None
            while cnt >= min_players_by_step[lv]:
                teams = pack(chosen, cnt, lv)
                if teams is not None or len(chosen) == 1:
                    break
                # Parties that do not fit together: drop the last-added (farthest) group.
                dropped = chosen.pop()
                cnt -= _size[dropped]
                lv = min(_level[c] for c in chosen)
            if teams is None:
                continue
            for c in chosen:
                _used[c] = True
                q = pos[c]
                lq, rq = left[q], right[q]
                if lq >= 0:
                    right[lq] = rq
                if rq < m:
                    left[rq] = lq
            emit(chosen, teams, lv, region)

    for key, members in buckets.items():
        run_bucket(members, key[1])

    if lat_name or inter0 is not None:
        # Second pass, leftovers only: each also joins every other region it can play in and
        # every other value it lists, so players whose best region or most popular value
        # differ can still meet. Only buckets that someone joined this way are run again.
        second: dict[Any, list[int]] = defaultdict(list)
        widened: set[Any] = set()
        for i in by_age:
            if not valid[i] or used[i]:
                continue
            sk_, home_region, home_value = skey[i], bregion[i], bvalue[i]
            if lat_name:
                cap = maxlat_by_step[level[i]]
                for region, ms in lats[i].items():
                    if ms <= cap:
                        k2 = (sk_, region, home_value)
                        second[k2].append(i)
                        if region != home_region:
                            widened.add(k2)
            if inter0 is not None:
                for v in sorted(inter0[i]):  # set order follows the per-process hash seed
                    if v == home_value:
                        if lat_name:
                            continue  # the region loop added the home bucket already
                        second[(sk_, home_region, v)].append(i)
                        continue
                    k2 = (sk_, home_region, v)
                    second[k2].append(i)
                    widened.add(k2)
        for k2, members in second.items():  # in insertion order, not the set's: deterministic
            if k2 in widened and len(members) > 1:
                run_bucket(members, k2[1])

    unmatched: dict[Hashable, Explanation] = {}
    if explain:
        _explain(
            rules,
            tickets,
            now,
            valid,
            used,
            pre_explained,
            level,
            size,
            skill,
            skey,
            lats,
            inter_sets,
            inter_names,
            string_names,
            primary,
            lat_name,
            md_by_step,
            maxlat_by_step,
            min_players_by_step,
            team_count,
            min_team_by_step,
            step_times,
            unmatched,
        )
    return MatchResult(matches, unmatched)


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


def _explain(
    rules,
    tickets,
    now,
    valid,
    used,
    pre_explained,
    level,
    size,
    skill,
    skey,
    lats,
    inter_sets,
    inter_names,
    string_names,
    primary,
    lat_name,
    md_by_step,
    maxlat_by_step,
    min_players_by_step,
    team_count,
    min_team_by_step,
    step_times,
    out,
) -> None:
    """Fill ``out`` with an Explanation per unmatched ticket; linear plus a bisect per ticket."""
    n = len(tickets)
    pool = [i for i in range(n) if valid[i] and not used[i]]
    pc_name = rules.initial.player_count.name

    total_players = 0
    per_string = [defaultdict(int) for _ in string_names]
    by_group: dict[Any, list[int]] = defaultdict(list)
    for i in pool:
        s = size[i]
        total_players += s
        key = skey[i]
        if len(string_names) == 1:
            per_string[0][key] += s
        else:
            for k in range(len(string_names)):
                per_string[k][key[k]] += s
        by_group[key].append(i)

    group_players: dict[Any, int] = {}
    windows: dict[Any, tuple[list[float], list[int]]] = {}
    regions: dict[Any, dict[str, int]] = {}
    values: dict[Any, list[dict[str, int]]] = {}
    for key, members in by_group.items():
        group_players[key] = sum(size[i] for i in members)
        if primary:
            members_sorted = sorted(members, key=skill.__getitem__)
            cum = [0, *accumulate(size[i] for i in members_sorted)]
            windows[key] = ([skill[i] for i in members_sorted], cum)
        if lat_name:
            counter: dict[str, int] = defaultdict(int)
            for i in members:
                cap = maxlat_by_step[level[i]]
                for region, ms in lats[i].items():
                    if ms <= cap:
                        counter[region] += size[i]
            regions[key] = counter
        if inter_names:
            per_rule = []
            for k in range(len(inter_names)):
                counter = defaultdict(int)
                for i in members:
                    for v in inter_sets[k][i]:
                        counter[v] += size[i]
                per_rule.append(counter)
            values[key] = per_rule

    last_step = len(step_times)
    # Seconds until the next expansion step = its time - the wait so far = its time + created - now.
    next_at = [t - now for t in step_times]

    def next_in(i: int) -> float | None:
        lv = level[i]
        return None if lv >= last_step else next_at[lv] + tickets[i].created_at

    for i, (rule, message) in pre_explained.items():
        out[tickets[i].id] = Explanation(level[i], rule, message[:MAX_MESSAGE], next_in(i))

    one_string = len(string_names) == 1
    for i in pool:
        t = tickets[i]
        lv = level[i]
        s = size[i]
        min_team = min_team_by_step[lv]
        # A party fills (part of) one team, so the other teams need players of their own.
        needed = min_players_by_step[lv] - s
        if needed < (team_count - 1) * min_team:
            needed = (team_count - 1) * min_team
        key = skey[i]
        rule = None
        message = None
        found = total_players - s
        if found < needed:
            rule = pc_name
            message = f"player_count({pc_name}): {_no_others(needed)} searching (found {found})"
        if message is None and string_names:
            for k, name in enumerate(string_names):
                value = key if one_string else key[k]
                found = per_string[k][value] - s
                if found < needed:
                    rule = name
                    shown = _clip(repr(value), 60)
                    message = (
                        f"string_equality({name}): {_no_others(needed)} with {name} {shown} "
                        f"(found {found})"
                    )
                    break
            if message is None and len(string_names) > 1:
                found = group_players[key] - s
                if found < needed:
                    rule = string_names[0]
                    names = ", ".join(string_names)
                    message = (
                        f"string_equality({names}): {_no_others(needed)} with the same "
                        f"{names} (found {found})"
                    )
        if message is None and primary:
            vals, cum = windows[key]
            md = md_by_step[lv]
            v = skill[i]
            found = cum[bisect_right(vals, v + md)] - cum[bisect_left(vals, v - md)] - s
            if found < needed:
                rule = primary
                message = (
                    f"number_difference({primary}): {_no_others(needed)} within {md:g} of "
                    f"{v:g} (found {found})"
                )
        if message is None and lat_name:
            cap = maxlat_by_step[lv]
            counter = regions[key]
            best_region, found = None, -1
            for region, ms in lats[i].items():
                if ms <= cap and counter[region] - s > found:
                    best_region, found = region, counter[region] - s
            if found < needed:
                rule = lat_name
                message = (
                    f"latencies({lat_name}): {_no_others(needed)} within {_g(cap)} ms of a "
                    f"region this ticket can use (found {found} in {_clip(str(best_region))})"
                )
        if message is None and inter_names:
            for k, name in enumerate(inter_names):
                counter = values[key][k]
                found = max(counter[v] for v in inter_sets[k][i]) - s
                if found < needed:
                    rule = name
                    mine = sorted(inter_sets[k][i])
                    shown = ", ".join(_clip(v) for v in mine[:5]) + (", …" if len(mine) > 5 else "")
                    message = (
                        f"intersection({name}): {_no_others(needed)} sharing a value with "
                        f"[{shown}] (found {found})"
                    )
                    break
        if message is None:
            message = (
                f"no match yet: other players pass each rule on its own, but no group of "
                f"{needed + s} passes them all together (latency spread, party sizes, "
                f"or newer tickets' stricter rules)"
            )
        out[t.id] = Explanation(
            lv,
            rule,
            message[:MAX_MESSAGE],
            None if lv >= last_step else next_at[lv] + t.created_at,
        )
