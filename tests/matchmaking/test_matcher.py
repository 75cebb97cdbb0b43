import itertools
import math
import os
import random
import subprocess
import sys

import pytest

from matchmaking.matcher import RATED_KEY, Ticket, form_matches
from matchmaking.rules import EXAMPLE_RULES, parse_rules
from ratings import skill
from ratings.skill import match_quality

NOW = 100_000.0


def ticket(tid, *, wait=0.0, players=None, **attributes):
    return Ticket(
        id=tid,
        players=tuple(players) if players else (f"{tid}-p",),
        attributes=attributes,
        created_at=NOW - wait,
    )


def profile(team_count=2, min_team=1, max_team=None, expansions=None, **rules):
    initial = {
        "match_size": {
            "type": "player_count",
            "attributes": {
                "team_count": team_count,
                "min_team_size": min_team,
                "max_team_size": max_team or min_team,
            },
        }
    }
    for name, (rule_type, attrs) in rules.items():
        initial[name] = {"type": rule_type, "attributes": attrs}
    return parse_rules({"initial": initial, "expansions": expansions or {}})


def matched_sets(result):
    return [frozenset(m.ticket_ids) for m in result.matches]


def skill_duel(max_difference=10, expansions=None):
    return profile(
        skill=("number_difference", {"max_difference": max_difference}), expansions=expansions
    )


# -- each rule type -------------------------------------------------------------------------------


def test_string_equality_matches_players_of_the_same_mode():
    rules = profile(mode=("string_equality", {}))
    tickets = [
        ticket("a", mode="ctf"),
        ticket("b", mode="tdm"),
        ticket("c", mode="ctf"),
        ticket("d", mode="koth"),
    ]

    result = form_matches(tickets, rules, NOW)

    assert matched_sets(result) == [{"a", "c"}]
    assert result.unmatched["b"].rule == "mode"
    assert result.unmatched["b"].message == (
        "string_equality(mode): no other player with mode 'tdm' (found 0)"
    )


def test_number_difference_matches_within_max_difference():
    result = form_matches([ticket("a", skill=1500), ticket("b", skill=1510)], skill_duel(), NOW)

    assert matched_sets(result) == [{"a", "b"}]
    assert result.unmatched == {}


def test_number_difference_refuses_beyond_max_difference():
    result = form_matches([ticket("a", skill=1500), ticket("b", skill=1511)], skill_duel(), NOW)

    assert result.matches == []
    assert result.unmatched["a"].rule == "skill"
    assert result.unmatched["a"].message == (
        "number_difference(skill): no other player within 10 of 1500 (found 0)"
    )


def test_number_difference_bounds_the_whole_match_not_just_neighbours():
    # 1500-1508-1516: each neighbour pair is within 10, but the match would span 16.
    rules = profile(team_count=1, min_team=3, skill=("number_difference", {"max_difference": 10}))
    tickets = [ticket("a", skill=1500), ticket("b", skill=1508), ticket("c", skill=1516)]

    assert form_matches(tickets, rules, NOW).matches == []


def test_intersection_matches_players_sharing_a_map():
    rules = profile(maps=("intersection", {"overlap": 1}))
    tickets = [ticket("a", maps=["dust", "mill"]), ticket("b", maps=["mill", "vault"])]

    assert matched_sets(form_matches(tickets, rules, NOW)) == [{"a", "b"}]


def test_intersection_refuses_too_small_an_overlap():
    rules = profile(maps=("intersection", {"overlap": 2}))
    tickets = [ticket("a", maps=["dust", "mill"]), ticket("b", maps=["mill", "vault"])]

    result = form_matches(tickets, rules, NOW)

    assert result.matches == []
    assert result.unmatched["a"].rule is None  # a map is shared, just not two of them


def test_intersection_needs_a_value_common_to_every_ticket():
    # a-b share x, b-c share y, a-c share z: every pair overlaps, the three together do not.
    rules = profile(team_count=1, min_team=3, maps=("intersection", {"overlap": 1}))
    tickets = [
        ticket("a", maps=["x", "z"]),
        ticket("b", maps=["x", "y"]),
        ticket("c", maps=["y", "z"]),
    ]

    assert form_matches(tickets, rules, NOW).matches == []


def latency_duel(max_latency=100, difference=30):
    return profile(
        beacons=("latencies", {"max_latency": max_latency, "difference": difference}),
    )


def test_latencies_match_in_a_region_both_can_use():
    tickets = [
        ticket("a", beacons={"eu": 20, "us": 90}),
        ticket("b", beacons={"eu": 35, "us": 140}),
    ]

    result = form_matches(tickets, latency_duel(), NOW)

    assert [m.region for m in result.matches] == ["eu"]


def test_latencies_refuse_a_player_with_no_region_under_max_latency():
    tickets = [ticket("a", beacons={"eu": 20}), ticket("b", beacons={"eu": 130, "us": 150})]

    result = form_matches(tickets, latency_duel(), NOW)

    assert result.matches == []
    assert result.unmatched["b"].rule == "beacons"
    assert result.unmatched["b"].message == (
        "latencies(beacons): no region within 100 ms (best: eu 130 ms)"
    )


def test_latencies_refuse_a_spread_above_difference():
    tickets = [ticket("a", beacons={"eu": 10}), ticket("b", beacons={"eu": 45})]

    result = form_matches(tickets, latency_duel(difference=30), NOW)

    assert result.matches == []


def test_latencies_find_a_shared_region_that_is_not_everyones_best():
    tickets = [
        ticket("a", beacons={"eu": 10, "us-east": 80}),
        ticket("b", beacons={"us-west": 15, "us-east": 70}),
    ]

    result = form_matches(tickets, latency_duel(max_latency=100, difference=30), NOW)

    assert [m.region for m in result.matches] == ["us-east"]


def test_every_rule_at_once_forms_a_valid_match():
    tickets = [
        ticket(str(k), mode="ctf", skill=1500 + k, maps=["dust"], beacons={"eu": 30 + k})
        for k in range(4)
    ]

    result = form_matches(tickets, EXAMPLE_RULES, NOW)

    assert matched_sets(result) == [{"0", "1", "2", "3"}]
    assert [len(team) for team in result.matches[0].teams] == [2, 2]


# -- expansions -----------------------------------------------------------------------------------

RELAXING = {"30": {"skill": {"max_difference": 100}}}


def test_expansion_relaxes_a_rule_once_both_tickets_have_waited():
    tickets = [ticket("a", wait=31, skill=1500), ticket("b", wait=45, skill=1560)]

    result = form_matches(tickets, skill_duel(10, RELAXING), NOW)

    assert matched_sets(result) == [{"a", "b"}]
    assert result.matches[0].step == 1


def test_expansion_does_not_apply_before_its_time():
    tickets = [ticket("a", wait=29, skill=1500), ticket("b", wait=29, skill=1560)]

    result = form_matches(tickets, skill_duel(10, RELAXING), NOW)

    assert result.matches == []
    assert result.unmatched["a"].step == 0
    assert result.unmatched["a"].next_step_in == pytest.approx(1)


def test_a_match_uses_the_strictest_step_among_its_tickets():
    # a has waited long enough for the relaxed window, b has not: b's rules hold.
    tickets = [ticket("a", wait=40, skill=1500), ticket("b", wait=5, skill=1560)]

    result = form_matches(tickets, skill_duel(10, RELAXING), NOW)

    assert result.matches == []
    assert result.unmatched["a"].step == 1
    assert result.unmatched["a"].next_step_in is None
    assert result.unmatched["b"].step == 0


def test_expansion_lowers_min_team_size_after_a_long_wait():
    expansions = {"60": {"match_size": {"attributes": {"min_team_size": 1}}}}
    rules = profile(team_count=2, min_team=2, max_team=2, expansions=expansions)

    early = form_matches([ticket("a", wait=59), ticket("b", wait=59)], rules, NOW)
    late = form_matches([ticket("a", wait=61), ticket("b", wait=70)], rules, NOW)

    assert early.matches == []
    assert early.unmatched["a"].message == (
        "player_count(match_size): no 3 other players searching (found 1)"
    )
    assert [m.teams for m in late.matches] in ([(("a",), ("b",))], [(("b",), ("a",))])


# -- teams, parties, host, fairness ---------------------------------------------------------------


def team_totals(match, skill_by_id):
    return [sum(skill_by_id[t] for t in team) for team in match.teams]


def test_teams_are_balanced_by_skill():
    rules = profile(team_count=2, min_team=2, skill=("number_difference", {"max_difference": 100}))
    skills = {"a": 1000, "b": 1010, "c": 1020, "d": 1030}

    result = form_matches([ticket(k, skill=v) for k, v in skills.items()], rules, NOW)

    (match,) = result.matches
    first, second = team_totals(match, skills)
    assert first == second == 2030  # 1030+1000 against 1020+1010


def test_larger_teams_stay_within_one_players_spread_of_each_other():
    rules = profile(team_count=2, min_team=4, skill=("number_difference", {"max_difference": 200}))
    rng = random.Random(4)
    skills = {f"t{k}": rng.randint(1400, 1600) for k in range(8)}

    (match,) = form_matches([ticket(k, skill=v) for k, v in skills.items()], rules, NOW).matches

    first, second = team_totals(match, skills)
    assert abs(first - second) <= max(skills.values()) - min(skills.values())
    assert [len(team) for team in match.teams] == [4, 4]


def test_a_party_shares_one_team_and_fills_it():
    rules = profile(team_count=2, min_team=2, skill=("number_difference", {"max_difference": 100}))
    tickets = [
        ticket("solo1", skill=1500),
        ticket("party", skill=1500, players=["p1", "p2"]),
        ticket("solo2", skill=1510),
    ]

    (match,) = form_matches(tickets, rules, NOW).matches

    assert ("party",) in match.teams
    assert ("p1", "p2") in match.team_players
    assert sorted(map(len, match.team_players)) == [2, 2]


def test_parties_are_never_split_across_teams_or_matches():
    rules = profile(team_count=2, min_team=2, skill=("number_difference", {"max_difference": 300}))
    rng = random.Random(7)
    tickets = []
    for k in range(200):
        size = rng.choice([1, 1, 2])
        tickets.append(
            ticket(
                f"t{k}", skill=rng.randint(1200, 1800), players=[f"t{k}-{j}" for j in range(size)]
            )
        )

    result = form_matches(tickets, rules, NOW)

    seen = []
    for match in result.matches:
        seen.extend(match.ticket_ids)
        for team_tickets, team_players in zip(match.teams, match.team_players, strict=True):
            # Every player of every ticket in the team is in that team, and only them.
            expected = [p for t in tickets if t.id in team_tickets for p in t.players]
            assert sorted(team_players) == sorted(expected)
            assert len(team_players) == 2
    assert len(seen) == len(set(seen))
    assert len(result.matches) > 40


def test_a_party_larger_than_a_team_is_explained_not_matched():
    rules = profile(team_count=2, min_team=2)
    tickets = [ticket("big", players=["a", "b", "c"]), ticket("x"), ticket("y"), ticket("z")]

    result = form_matches(tickets, rules, NOW)

    assert "big" in result.unmatched
    assert result.unmatched["big"].message == (
        "player_count(match_size): a party of 3 cannot fit a team of at most 2"
    )


def test_host_is_the_player_with_the_lowest_latency_in_the_region():
    tickets = [
        ticket("a", wait=50, beacons={"eu": 40}),
        ticket("b", wait=10, beacons={"eu": 12}, players=["leader", "friend"]),
    ]
    rules = profile(
        team_count=2,
        min_team=1,
        max_team=2,
        beacons=("latencies", {"max_latency": 100, "difference": 50}),
    )

    (match,) = form_matches(tickets, rules, NOW).matches

    assert (match.host_ticket, match.host_player) == ("b", "leader")


def test_host_without_latencies_is_the_oldest_tickets_first_player():
    tickets = [
        ticket("new", wait=1, skill=1500),
        ticket("old", wait=90, skill=1505, players=["old-leader", "old-friend"]),
        ticket("mid", wait=20, skill=1502),
    ]
    rules = profile(team_count=1, min_team=4, skill=("number_difference", {"max_difference": 10}))

    (match,) = form_matches(tickets, rules, NOW).matches

    assert match.host_player == "old-leader"
    assert match.region is None


def test_older_tickets_are_matched_first_when_players_are_short():
    tickets = [ticket(f"w{w}", wait=w, skill=1500) for w in (5, 50, 20, 1, 35)]
    rules = profile(team_count=2, min_team=2, skill=("number_difference", {"max_difference": 10}))

    result = form_matches(tickets, rules, NOW)

    assert matched_sets(result) == [{"w50", "w35", "w20", "w5"}]
    assert list(result.unmatched) == ["w1"]


def test_an_old_ticket_is_not_passed_over_for_two_newer_ones():
    tickets = [
        ticket("old", wait=60, skill=1508),
        ticket("new1", wait=1, skill=1500),
        ticket("new2", wait=2, skill=1501),
    ]

    result = form_matches(tickets, skill_duel(10), NOW)

    assert "old" not in result.unmatched


# -- explanations ---------------------------------------------------------------------------------


def test_explanation_names_the_skill_window_and_counts_players_needed():
    rules = profile(team_count=2, min_team=2, skill=("number_difference", {"max_difference": 10}))
    tickets = [
        ticket("me", skill=1520),
        ticket("near", skill=1525),
        ticket("far", skill=1600),
        ticket("farther", skill=1650),
    ]

    result = form_matches(tickets, rules, NOW)

    assert result.unmatched["me"].message == (
        "number_difference(skill): no 3 other players within 10 of 1520 (found 1)"
    )
    assert result.unmatched["me"].rule == "skill"
    assert result.unmatched["me"].step == 0


def test_explanation_names_the_map_nobody_shares():
    rules = profile(maps=("intersection", {"overlap": 1}))
    tickets = [ticket("a", maps=["dust"]), ticket("b", maps=["mill"])]

    result = form_matches(tickets, rules, NOW)

    assert result.unmatched["a"].message == (
        "intersection(maps): no other player sharing a value with [dust] (found 0)"
    )


def test_explanation_for_stale_attributes_does_not_fail_the_pass():
    tickets = [ticket("old", mode="ctf"), ticket("a", skill=1), ticket("b", skill=2)]

    result = form_matches(tickets, skill_duel(), NOW)

    assert matched_sets(result) == [{"a", "b"}]
    assert result.unmatched["old"].rule == "skill"
    assert result.unmatched["old"].message == (
        "attributes no longer fit this profile: skill is missing "
        "(required by the number_difference rule)"
    )


def test_explanation_says_when_the_queue_is_simply_too_short():
    rules = profile(team_count=2, min_team=2, skill=("number_difference", {"max_difference": 10}))

    result = form_matches([ticket("a", skill=1), ticket("b", skill=2)], rules, NOW)

    assert result.unmatched["a"].rule == "match_size"
    assert result.unmatched["a"].message == (
        "player_count(match_size): no 3 other players searching (found 1)"
    )


def test_every_unmatched_ticket_gets_an_explanation():
    rng = random.Random(11)
    tickets = [
        ticket(
            f"t{k}",
            wait=rng.uniform(0, 90),
            mode=rng.choice(["ctf", "tdm"]),
            skill=rng.randint(1000, 2000),
            maps=rng.sample(["a", "b", "c", "d"], 2),
            beacons={"eu": rng.randint(10, 300), "us": rng.randint(10, 300)},
        )
        for k in range(300)
    ]

    result = form_matches(tickets, EXAMPLE_RULES, NOW)

    matched = {tid for m in result.matches for tid in m.ticket_ids}
    assert matched.isdisjoint(result.unmatched)
    assert matched | set(result.unmatched) == {t.id for t in tickets}
    assert all(e.message for e in result.unmatched.values())


# -- every match obeys every rule (randomised) ----------------------------------------------------


def assert_match_obeys_rules(match, by_id, rules):
    members = [by_id[tid] for tid in match.ticket_ids]
    step = min(rules.step_at(NOW - t.created_at) for t in members)
    assert match.step == step
    rs = rules.steps[step]
    pc = rs.player_count
    assert len(match.teams) == pc.team_count
    for team in match.teams:
        size = sum(len(by_id[tid].players) for tid in team)
        assert pc.min_team_size <= size <= pc.max_team_size
    for rule in rs.rules:
        values = [t.attributes[rule.name] for t in members]
        if rule.type == "string_equality":
            assert len(set(values)) == 1
        elif rule.type == "number_difference":
            assert max(values) - min(values) <= rule.max_difference
        elif rule.type == "intersection":
            assert len(set.intersection(*map(set, values))) >= rule.overlap
        else:
            in_region = [v[match.region] for v in values]
            assert max(in_region) <= rule.max_latency
            assert max(in_region) - min(in_region) <= rule.difference
            host = by_id[match.host_ticket].attributes[rule.name][match.region]
            assert host == min(in_region)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_randomised_queues_only_form_matches_that_obey_every_rule(seed):
    rng = random.Random(seed)
    rules = parse_rules(EXAMPLE_RULES)
    tickets = []
    for k in range(1500):
        size = rng.choice([1, 1, 1, 2])
        tickets.append(
            ticket(
                f"t{k}",
                wait=rng.uniform(0, 90),
                players=[f"t{k}-{j}" for j in range(size)],
                mode=rng.choice(["ctf", "tdm", "koth"]),
                skill=rng.gauss(1500, 250),
                maps=rng.sample(["a", "b", "c", "d", "e"], rng.randint(1, 3)),
                beacons={r: rng.randint(5, 300) for r in ("eu", "us", "asia")},
            )
        )
    by_id = {t.id: t for t in tickets}

    result = form_matches(tickets, rules, NOW)

    ids = [tid for m in result.matches for tid in m.ticket_ids]
    assert len(ids) == len(set(ids))
    for match in result.matches:
        assert_match_obeys_rules(match, by_id, rules)
    assert len(result.matches) > 100


def test_explanations_fit_in_300_characters_whatever_the_values():
    rules = profile(mode=("string_equality", {}), maps=("intersection", {"overlap": 1}))
    long_maps = [f"{k}" + "m" * 190 for k in range(64)]
    tickets = [
        ticket("a", mode="x" * 200, maps=long_maps),
        ticket("b", mode="x" * 200, maps=["other"]),
    ]

    result = form_matches(tickets, rules, NOW)

    message = result.unmatched["a"].message
    assert message.startswith("intersection(maps): no other player sharing a value with [0mmm")
    assert len(message) <= 300


def test_intersection_finds_partners_among_many_distinct_values():
    # 20 maps, 4 tickets each, queued interleaved: neighbours in age rarely share a map.
    rules = profile(team_count=1, min_team=4, maps=("intersection", {"overlap": 1}))
    tickets = [ticket(f"t{k}", wait=k, maps=[f"map{k % 20}"]) for k in range(80)]

    result = form_matches(tickets, rules, NOW, scan_limit=8)

    assert len(result.matches) == 20
    assert result.unmatched == {}


def test_a_leftover_meets_partners_on_its_less_popular_value():
    # c lists x and y; x is the popular one, so c first looks among x, where a and b pair up.
    rules = profile(team_count=1, min_team=2, maps=("intersection", {"overlap": 1}))
    tickets = [
        ticket("a", wait=50, maps=["x"]),
        ticket("b", wait=40, maps=["x"]),
        ticket("c", wait=10, maps=["x", "y"]),
        ticket("d", wait=5, maps=["y"]),
    ]

    result = form_matches(tickets, rules, NOW)

    assert sorted(map(sorted, matched_sets(result))) == [["a", "b"], ["c", "d"]]


DETERMINISM_SCRIPT = """
import random
from matchmaking.matcher import Ticket, form_matches
from matchmaking.rules import EXAMPLE_RULES
rng = random.Random(5)
tickets = [
    Ticket(k, (k,), {"mode": rng.choice(["a", "b"]), "skill": rng.randint(1000, 2000),
                     "maps": rng.sample(list("pqrstuvw"), 3),
                     "beacons": {r: rng.randint(5, 250) for r in ("eu", "us", "asia", "sa")}},
           1000 - rng.uniform(0, 90))
    for k in range(3000)
]
result = form_matches(tickets, EXAMPLE_RULES, 1000.0)
print(sorted(m.teams for m in result.matches), sorted(result.unmatched.items()))
"""


def test_the_same_queue_gives_the_same_matches_in_every_process():
    # Sets of strings iterate in an order that depends on the per-process hash seed.
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
        outputs.append(run.stdout)

    assert outputs[0] == outputs[1]
    assert outputs[0].count("((") > 100


def test_a_party_that_fills_a_match_on_its_own_needs_nobody_else():
    rules = profile(
        team_count=1, min_team=3, max_team=4, skill=("number_difference", {"max_difference": 10})
    )
    tickets = [ticket("trio", skill=1500, players=["a", "b", "c"]), ticket("far", skill=1900)]

    result = form_matches(tickets, rules, NOW)

    assert [m.team_players for m in result.matches] == [(("a", "b", "c"),)]
    assert list(result.unmatched) == ["far"]


# -- rated queues: sigma in pairing, balance and explanations (issue 14) -------------------------

RATED_DUEL = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 1, "max_team_size": 1},
        },
        "skill": {
            "type": "number_difference",
            "rating": "duel",
            "attributes": {"max_difference": 100},
        },
    }
}


def rated_profile(team_count=2, team_size=1, max_difference=100):
    rules = {**RATED_DUEL, "initial": dict(RATED_DUEL["initial"])}
    rules["initial"]["match_size"] = {
        "type": "player_count",
        "attributes": {
            "team_count": team_count,
            "min_team_size": team_size,
            "max_team_size": team_size,
        },
    }
    rules["initial"]["skill"] = {
        "type": "number_difference",
        "rating": "duel",
        "attributes": {"max_difference": max_difference},
    }
    return parse_rules(rules)


def rated(tid, mu, sigma, *, wait=0.0, players=None):
    return ticket(
        tid,
        wait=wait,
        players=players,
        skill=mu,
        **{RATED_KEY: {"skill": {"mu": mu, "sigma": sigma}}},
    )


def test_match_quality_is_one_for_equal_certain_players_and_lower_with_doubt_or_distance():
    certain = match_quality([(1500.0, 0.0, 1), (1500.0, 0.0, 1)])
    new_players = match_quality([(1500.0, 500.0**2, 1), (1500.0, 500.0**2, 1)])
    apart = match_quality([(1500.0, 0.0, 1), (1800.0, 0.0, 1)])

    assert certain == pytest.approx(1.0)
    # sqrt(2 beta^2 / (2 beta^2 + 2 * 500^2)) with beta 250
    assert new_players == pytest.approx((125_000 / 625_000) ** 0.5)
    assert apart == pytest.approx(math.exp(-(300.0**2) / (2 * 125_000)))


def test_match_quality_follows_the_models_draw_probability():
    # TrueSkill's quality is the draw probability relative to equal, certain sides: ordering
    # two matches by it orders them as OpenSkill's predict_draw does.
    def draw(a, b):
        return skill.MODEL.predict_draw(
            [[skill.MODEL.rating(mu=a[0], sigma=a[1])], [skill.MODEL.rating(mu=b[0], sigma=b[1])]]
        )

    pairs = [((1500, 60), (1510, 70)), ((1500, 300), (1500, 320)), ((1500, 80), (1700, 80))]
    by_quality = sorted(
        pairs, key=lambda p: match_quality([(p[0][0], p[0][1] ** 2, 1), (p[1][0], p[1][1] ** 2, 1)])
    )
    assert by_quality == sorted(pairs, key=lambda p: draw(*p))


def test_rated_pairing_prefers_similar_uncertainty_among_equally_close_players():
    tickets = [
        rated("certain", 1500, 80, wait=30),
        rated("doubtful", 1500, 340, wait=20),
        rated("also-certain", 1501, 90, wait=10),
        rated("also-doubtful", 1502, 330, wait=5),
    ]

    result = form_matches(tickets, rated_profile(), NOW)

    assert sorted(map(sorted, matched_sets(result))) == [
        ["also-certain", "certain"],
        ["also-doubtful", "doubtful"],
    ]
    by_pair = {frozenset(m.ticket_ids): m.quality for m in result.matches}
    assert by_pair[frozenset({"certain", "also-certain"})] > 0.9
    # Pairing certain with doubtful would have scored both matches lower on average.
    mixed = [
        match_quality([(1500, 80**2, 1), (1502, 330**2, 1)]),
        match_quality([(1500, 340**2, 1), (1501, 90**2, 1)]),
    ]
    assert sum(by_pair.values()) > sum(mixed)


def test_rated_pairing_keeps_the_window_whatever_the_uncertainty():
    tickets = [
        rated("a", 1500, 100, wait=30),
        rated("same-sigma-far", 1650, 100, wait=20),
        rated("other-sigma-near", 1560, 350, wait=10),
    ]

    result = form_matches(tickets, rated_profile(max_difference=100), NOW)

    assert matched_sets(result) == [frozenset({"a", "other-sigma-near"})]


@pytest.mark.parametrize(
    ("team_size", "party_sizes"),
    [(2, [1, 1, 1, 1]), (3, [1] * 6), (3, [2, 1, 1, 1, 1]), (4, [2, 2, 1, 1, 1, 1])],
    ids=["2v2 solos", "3v3 solos", "3v3 with a duo", "4v4 with two duos"],
)
def test_rated_teams_are_the_split_the_model_predicts_closest(team_size, party_sizes):
    rng = random.Random(4)
    rules = rated_profile(team_size=team_size, max_difference=1000)
    for _ in range(30):
        tickets = [
            rated(
                f"t{k}",
                rng.gauss(1500, 150),
                rng.uniform(50, 350),
                players=[f"t{k}-p{m}" for m in range(size)],
            )
            for k, size in enumerate(party_sizes)
        ]
        by_id = {t.id: t for t in tickets}

        (match,) = form_matches(tickets, rules, NOW).matches

        def sums(ids, by_id=by_id):
            ts = [by_id[i] for i in ids]
            return (
                sum(t.attributes["skill"] * len(t.players) for t in ts),
                sum(t.attributes[RATED_KEY]["skill"]["sigma"] ** 2 * len(t.players) for t in ts),
                sum(len(t.players) for t in ts),
            )

        ids = [t.id for t in tickets]
        splits = [
            (a, [i for i in ids if i not in a])
            for r in range(1, len(ids))
            for a in itertools.combinations(ids, r)
        ]
        best = max(
            match_quality([sums(a), sums(b)])
            for a, b in splits
            if sums(a)[2] == sums(b)[2] == team_size
        )
        assert match.quality == pytest.approx(best)
        assert match.quality == pytest.approx(match_quality([sums(team) for team in match.teams]))


def test_rated_party_counts_its_mean_once_per_member_in_the_balance():
    rules = rated_profile(team_size=2, max_difference=1000)
    tickets = [
        rated("duo", 1500, 100, players=["d1", "d2"], wait=30),
        rated("high", 1700, 100),
        rated("low", 1300, 100),
    ]

    (match,) = form_matches(tickets, rules, NOW).matches

    assert sorted(map(sorted, match.teams)) == [["duo"], ["high", "low"]]
    assert match.quality == pytest.approx(
        match_quality([(3000, 2 * 100**2, 2), (3000, 2 * 100**2, 2)])
    )


def test_unmatched_rated_ticket_is_told_its_predicted_quality():
    tickets = [rated("a", 1500, 200), rated("b", 1900, 100)]

    result = form_matches(tickets, rated_profile(max_difference=100), NOW)

    explanation = result.unmatched["a"]
    expected = match_quality([(1500, 200**2, 1), (1900, 100**2, 1)])
    assert explanation.quality == pytest.approx(expected)
    assert explanation.message.endswith(f"; nearest player: predicted quality {expected:.2f}")
    assert explanation.message.startswith("number_difference(skill): no other player within 100")


def test_a_rated_ticket_without_its_sigma_counts_as_a_new_player():
    tickets = [ticket("a", skill=1500), rated("b", 1500, 500)]

    (match,) = form_matches(tickets, rated_profile(), NOW).matches

    assert match.quality == pytest.approx(match_quality([(1500, 500**2, 1)] * 2))


def test_unrated_matches_carry_no_quality():
    tickets = [ticket("a", skill=1500), ticket("b", skill=1505)]

    result = form_matches(tickets, skill_duel(), NOW)

    assert [m.quality for m in result.matches] == [None]
