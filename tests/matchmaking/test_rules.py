import copy

import pytest

from matchmaking.rules import (
    EXAMPLE_ATTRIBUTES,
    EXAMPLE_RULES,
    AttributesError,
    RulesError,
    effective_rules,
    merge_party_attributes,
    parse_rules,
    validate_attributes,
)


def rules_with(**changes):
    """EXAMPLE_RULES with dotted-path replacements, e.g. initial__skill={"type": ...}."""
    data = copy.deepcopy(EXAMPLE_RULES)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return data


def refusal(data) -> str:
    with pytest.raises(RulesError) as exc:
        parse_rules(data)
    return str(exc.value)


# -- rules ----------------------------------------------------------------------------------------


def test_example_rules_parse_into_initial_step_and_two_expansions():
    rules = parse_rules(EXAMPLE_RULES)

    assert [step.after_seconds for step in rules.steps] == [0.0, 30.0, 60.0]
    initial = rules.initial
    assert initial.player_count.team_count == 2
    assert initial.player_count.min_team_size == 2
    assert [r.type for r in initial.rules] == [
        "string_equality",
        "number_difference",
        "intersection",
        "latencies",
    ]
    assert initial["skill"].max_difference == 100


def test_expansions_accumulate_and_apply_by_wait_time():
    rules = parse_rules(EXAMPLE_RULES)

    assert effective_rules(rules, 0)["skill"].max_difference == 100
    assert effective_rules(rules, 29.9)["skill"].max_difference == 100
    at_30 = effective_rules(rules, 30)
    assert at_30["skill"].max_difference == 250
    assert at_30["beacons"].max_latency == 250
    assert at_30.player_count.min_team_size == 2
    at_60 = effective_rules(rules, 75)
    # The 60 s step keeps what the 30 s step relaxed and adds its own change.
    assert at_60["skill"].max_difference == 250
    assert at_60.player_count.min_team_size == 1
    assert rules.step_at(75) == 2
    assert rules.seconds_to_next_step(10) == 20
    assert rules.seconds_to_next_step(75) is None


def test_expansion_changes_may_omit_the_attributes_wrapper():
    rules = parse_rules(
        rules_with(expansions={"45": {"skill": {"max_difference": 500}}}),
    )

    assert rules.effective(50)["skill"].max_difference == 500


def test_rules_refuse_a_negative_max_difference_naming_its_path():
    message = refusal(rules_with(initial__skill__attributes={"max_difference": -1}))

    assert message == (
        "rules.initial.skill.attributes.max_difference must be a non-negative number"
    )


def test_rules_refuse_unknown_rule_type():
    message = refusal(rules_with(initial__skill={"type": "number_distance"}))

    assert message.startswith("rules.initial.skill.type must be one of player_count")


def test_rules_refuse_missing_player_count():
    message = refusal(rules_with(initial__match_size=None))

    assert message == "rules.initial must have one rule of type player_count"


def test_rules_refuse_max_team_size_below_min():
    message = refusal(
        rules_with(
            initial__match_size__attributes={
                "team_count": 2,
                "min_team_size": 3,
                "max_team_size": 2,
            }
        )
    )

    assert message == "rules.initial.match_size.attributes.max_team_size must be >= min_team_size"


def test_rules_refuse_fractional_or_zero_team_sizes():
    zero = refusal(
        rules_with(
            initial__match_size__attributes={
                "team_count": 0,
                "min_team_size": 1,
                "max_team_size": 1,
            }
        )
    )
    fraction = refusal(rules_with(initial__maps__attributes={"overlap": 1.5}))

    assert zero == "rules.initial.match_size.attributes.team_count must be an integer >= 1"
    assert fraction == "rules.initial.maps.attributes.overlap must be an integer >= 1"


def test_rules_refuse_a_missing_or_unknown_rule_field():
    missing = refusal(rules_with(initial__beacons__attributes={"max_latency": 100}))
    unknown = refusal(rules_with(initial__mode__attributes={"case_sensitive": True}))

    assert missing == "rules.initial.beacons.attributes.difference is required for latencies"
    assert unknown == (
        "rules.initial.mode.attributes.case_sensitive is not a field of string_equality "
        "(takes nothing)"
    )


def test_rules_refuse_two_latency_rules():
    data = rules_with(
        initial__ping={"type": "latencies", "attributes": {"max_latency": 1, "difference": 1}}
    )

    assert refusal(data) == "rules.initial.ping is a second latencies rule (first: beacons)"


def test_rules_refuse_an_expansion_that_tightens_a_rule():
    message = refusal(
        rules_with(expansions={"30": {"skill": {"attributes": {"max_difference": 5}}}})
    )

    assert message == (
        "rules.expansions.30.skill.attributes.max_difference must relax the rule: "
        "5 is stricter than 100"
    )


def test_rules_refuse_an_expansion_of_an_unknown_rule_or_bad_delay():
    unknown = refusal(rules_with(expansions={"30": {"elo": {"max_difference": 500}}}))
    delay = refusal(rules_with(expansions={"soon": {"skill": {"max_difference": 500}}}))
    negative = refusal(rules_with(expansions={"-5": {"skill": {"max_difference": 500}}}))

    assert unknown == "rules.expansions.30.elo names no rule in rules.initial"
    assert delay == "rules.expansions.soon must be keyed by a number of seconds > 0"
    assert negative == "rules.expansions.-5 must be keyed by a number of seconds > 0"


def test_rules_refuse_changing_team_count_in_an_expansion():
    data = rules_with(expansions={"30": {"match_size": {"team_count": 3}}})

    assert refusal(data) == (
        "rules.expansions.30.match_size.team_count cannot change in an expansion (stays 2)"
    )


def test_rules_refuse_a_non_object_and_unknown_top_level_keys():
    assert refusal([1, 2]).startswith("rules must be an object")
    assert refusal({**EXAMPLE_RULES, "algorithm": {}}).startswith("rules.algorithm is not allowed")


# -- ticket attributes ----------------------------------------------------------------------------


def test_attributes_validate_and_come_back_normalised():
    clean = validate_attributes(EXAMPLE_RULES, {**EXAMPLE_ATTRIBUTES, "maps": ["a", "a", "b"]})

    assert clean["maps"] == ["a", "b"]
    assert clean["skill"] == 1520
    assert clean["beacons"] == {"eu-west": 32, "us-east": 110}


def test_attributes_name_the_missing_attribute():
    attributes = dict(EXAMPLE_ATTRIBUTES)
    del attributes["skill"]

    with pytest.raises(AttributesError) as exc:
        validate_attributes(EXAMPLE_RULES, attributes)

    assert exc.value.errors == {"skill": "is missing (required by the number_difference rule)"}
    assert "attributes.skill" in str(exc.value)


def test_attributes_name_an_unknown_attribute():
    with pytest.raises(AttributesError) as exc:
        validate_attributes(EXAMPLE_RULES, {**EXAMPLE_ATTRIBUTES, "elo": 1200})

    assert list(exc.value.errors) == ["elo"]
    assert "is not used by this profile" in exc.value.errors["elo"]


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("mode", 3, "must be a string"),
        ("skill", "1520", "must be a number"),
        ("skill", True, "must be a number"),
        ("maps", "harbor", "must be a non-empty list of strings"),
        ("maps", [], "must be a non-empty list of strings"),
        ("maps", ["harbor", 7], "must be a non-empty list of strings"),
        ("beacons", [32], "must be a non-empty object of region -> milliseconds"),
        ("beacons", {"eu-west": "fast"}, "must map each region to non-negative milliseconds"),
        ("beacons", {"eu-west": -3}, "must map each region to non-negative milliseconds"),
    ],
)
def test_attributes_refuse_wrong_types(name, value, problem):
    with pytest.raises(AttributesError) as exc:
        validate_attributes(EXAMPLE_RULES, {**EXAMPLE_ATTRIBUTES, name: value})

    assert list(exc.value.errors) == [name]
    assert exc.value.errors[name].startswith(problem)


def test_party_attributes_merge_mean_common_values_and_worst_latency():
    members = [
        {"mode": "ctf", "skill": 1400, "maps": ["a", "b", "c"], "beacons": {"eu": 20, "us": 90}},
        {"mode": "ctf", "skill": 1600, "maps": ["b", "c"], "beacons": {"eu": 40, "asia": 10}},
    ]

    merged = merge_party_attributes(EXAMPLE_RULES, members)

    assert merged == {"mode": "ctf", "skill": 1500, "maps": ["b", "c"], "beacons": {"eu": 40}}


def test_party_attributes_refuse_members_who_disagree_on_a_string():
    members = [
        {**EXAMPLE_ATTRIBUTES, "mode": "ctf"},
        {**EXAMPLE_ATTRIBUTES, "mode": "tdm"},
    ]

    with pytest.raises(AttributesError) as exc:
        merge_party_attributes(EXAMPLE_RULES, members)

    assert exc.value.errors == {"mode": "party members disagree: 'ctf' vs 'tdm'"}


def test_party_attributes_refuse_members_with_nothing_in_common():
    members = [
        {**EXAMPLE_ATTRIBUTES, "maps": ["a"], "beacons": {"eu": 10}},
        {**EXAMPLE_ATTRIBUTES, "maps": ["b"], "beacons": {"us": 10}},
    ]

    with pytest.raises(AttributesError) as exc:
        merge_party_attributes(EXAMPLE_RULES, members)

    assert set(exc.value.errors) == {"maps", "beacons"}


def test_expansion_times_are_computed_once_and_steps_follow_them():
    rules = parse_rules(EXAMPLE_RULES)

    assert rules.expansion_seconds == (30.0, 60.0)
    assert rules.last_step == 2
    assert [rules.step_at(w) for w in (0, 29.9, 30, 59.9, 60, 1e9)] == [0, 0, 1, 1, 2, 2]
    assert rules == parse_rules(EXAMPLE_RULES)  # the derived field takes no part in equality
