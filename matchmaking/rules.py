"""Matchmaking profile rules: parsing, validation, expansions, ticket attributes (no Django).

The rules JSON is the ``rules`` object of an Edgegap Gen2 matchmaker profile, so a game developer
can paste the one they already have. Each rule is named; the name is also the key of the ticket
attribute the rule reads (``player_count`` reads none). Example::

    {
      "initial": {
        "match_size": {"type": "player_count",
                       "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2}},
        "mode":    {"type": "string_equality"},
        "skill":   {"type": "number_difference", "attributes": {"max_difference": 100}},
        "maps":    {"type": "intersection", "attributes": {"overlap": 1}},
        "beacons": {"type": "latencies", "attributes": {"max_latency": 150, "difference": 100}}
      },
      "expansions": {
        "30": {"skill": {"attributes": {"max_difference": 250}},
               "beacons": {"attributes": {"max_latency": 250, "difference": 150}}},
        "60": {"match_size": {"attributes": {"min_team_size": 1}}}
      }
    }

and a ticket's attributes for it::

    {"mode": "ctf", "skill": 1520, "maps": ["harbor", "dust"],
     "beacons": {"eu-west": 32, "us-east": 110}}

Rule types and what a match must satisfy (every number is checked with <=, every count with >=):

- ``player_count`` (exactly one): ``team_count`` teams, each of ``min_team_size`` to
  ``max_team_size`` players. A party is never split, so a party may not exceed ``max_team_size``.
- ``string_equality``: every ticket has the same string.
- ``number_difference``: highest minus lowest value in the match <= ``max_difference``.
- ``intersection``: the tickets' string lists have at least ``overlap`` values in common.
- ``latencies`` (at most one): a map region -> milliseconds per ticket. The match is played in one
  region where every ticket's latency <= ``max_latency`` and highest minus lowest latency there
  <= ``difference``.

``expansions`` maps a wait in seconds to changes that apply once a ticket has waited that long;
later steps build on earlier ones. Changes are ``{"rule": {"attributes": {field: value}}}`` (the
Edgegap shape) or, shorter, ``{"rule": {field: value}}``. Expansions may only relax: a
``max_difference``, ``max_latency`` or ``difference`` may grow, an ``overlap`` or
``min_team_size`` may shrink; ``team_count`` and ``max_team_size`` are fixed (restating the same
value is accepted), so a match's capacity never changes. Because every step is at least as loose
as the one before, "the strictest rules among a match's tickets" is simply the lowest step.

Public API: `parse_rules`, `Rules` (`.steps`, `.step_at`, `.effective`, `.seconds_to_next_step`),
`effective_rules`, `validate_attributes`, `merge_party_attributes`, `attributes_shape_problem`,
`RulesError`, `AttributesError` (with `AttributeProblem`s, each a `Problem` code and its
parameters), `EXAMPLE_RULES`.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from enum import StrEnum
from string import Formatter
from typing import Any

PLAYER_COUNT = "player_count"
STRING_EQUALITY = "string_equality"
NUMBER_DIFFERENCE = "number_difference"
INTERSECTION = "intersection"
LATENCIES = "latencies"
RULE_TYPES = (PLAYER_COUNT, STRING_EQUALITY, NUMBER_DIFFERENCE, INTERSECTION, LATENCIES)

# Bounds on ticket attributes keep one ticket's share of a matcher pass small and predictable.
MAX_NAME_LENGTH = 64
MAX_STRING_LENGTH = 200
MAX_LIST_ITEMS = 64
_LEADERBOARD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

EXAMPLE_RULES: dict[str, Any] = {
    "initial": {
        "match_size": {
            "type": "player_count",
            "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
        },
        "mode": {"type": "string_equality"},
        "skill": {"type": "number_difference", "attributes": {"max_difference": 100}},
        "maps": {"type": "intersection", "attributes": {"overlap": 1}},
        "beacons": {"type": "latencies", "attributes": {"max_latency": 150, "difference": 100}},
    },
    "expansions": {
        "30": {
            "skill": {"attributes": {"max_difference": 250}},
            "beacons": {"attributes": {"max_latency": 250, "difference": 150}},
        },
        "60": {"match_size": {"attributes": {"min_team_size": 1}}},
    },
}

EXAMPLE_ATTRIBUTES: dict[str, Any] = {
    "mode": "ctf",
    "skill": 1520,
    "maps": ["harbor", "dust"],
    "beacons": {"eu-west": 32, "us-east": 110},
}


class RulesError(ValueError):
    """The rules JSON is invalid; the message starts with the path of the bad value."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path} {problem}")
        self.path = path


class Problem(StrEnum):
    """Every way a ticket's attributes can fail: a stable code and the English made from it.

    The code and its parameters are what clients switch on (the API's ``problems``); the template,
    filled with the same parameters, is the message people read (the API's ``fields``, may be
    reworded). One table, so a message never says something its code does not.
    """

    # The attributes as a whole ("" key).
    NOT_OBJECT = "not_object", "attributes must be an object"
    NO_MEMBERS = "no_members", "a party needs at least one member"
    # Any attribute.
    UNKNOWN = "unknown", "is not used by this profile (known attributes: {known})"
    MISSING = "missing", "is missing (required by the {rule_type} rule)"
    # A number the queue takes from ratings (matchmaking/services.py): the client may not send it.
    SET_BY_SERVER = "set_by_server", "is set by the server from your {leaderboard} rating"
    # string_equality
    NOT_STRING = "not_string", "must be a string"
    TOO_LONG = "too_long", "must be at most {max_length} characters"
    # number_difference
    NOT_NUMBER = "not_number", "must be a number"
    # intersection
    NOT_STRING_LIST = "not_string_list", "must be a non-empty list of strings"
    TOO_MANY_ITEMS = "too_many_items", "must have at most {max_items} items"
    # latencies
    NOT_LATENCY_MAP = "not_latency_map", "must be a non-empty object of region -> milliseconds"
    TOO_MANY_REGIONS = "too_many_regions", "must have at most {max_regions} regions"
    BAD_REGION_NAME = "bad_region_name", "must be keyed by region names"
    BAD_LATENCY = (
        "bad_latency",
        "must map each region to non-negative milliseconds ({region!r} does not)",
    )
    # merge_party_attributes
    PARTY_DISAGREE = "party_disagree", "party members disagree: {values}"
    PARTY_TOO_FEW_IN_COMMON = (
        "party_too_few_in_common",
        "party members have {in_common} values in common, need {need}",
    )
    PARTY_NO_COMMON_REGION = "party_no_common_region", "party members measured no region in common"

    template: str
    params: frozenset[str]

    def __new__(cls, code: str, template: str) -> Problem:
        member = str.__new__(cls, code)
        member._value_ = code
        member.template = template
        member.params = frozenset(name for _, name, _, _ in Formatter().parse(template) if name)
        return member

    def of(self, **params: Any) -> AttributeProblem:
        """This problem with its parameters: exactly the names its template uses."""
        if set(params) != self.params:
            raise TypeError(f"{self.value} takes {sorted(self.params)}, got {sorted(params)}")
        return AttributeProblem(self, params)


# How a list parameter reads in a message (its code carries the list itself).
_LIST_WORDS = {
    "known": lambda names: ", ".join(names) or "none",
    "values": lambda values: " vs ".join(map(repr, values)),
}


@dataclass(frozen=True, slots=True)
class AttributeProblem:
    """One attribute's problem: `code` and `params` for machines, `message` for people."""

    code: Problem
    params: Mapping[str, Any]

    @property
    def message(self) -> str:
        words = {name: _LIST_WORDS.get(name, _same)(value) for name, value in self.params.items()}
        return self.code.template.format(**words)

    def as_dict(self) -> dict[str, Any]:
        """The API's shape: ``{"code": "too_long", "max_length": 200}``."""
        return {"code": self.code.value, **self.params}


def _same(value: Any) -> Any:
    return value


class AttributesError(ValueError):
    """A ticket's attributes do not fit the profile's rules.

    ``problems`` maps each offending attribute name to its `AttributeProblem` (in the order the
    rules are declared, unknown attributes first); ``errors`` maps it to the problem's message,
    ready to be shown as field errors. The key ``""`` is about the attributes as a whole.
    """

    def __init__(self, problems: Mapping[str, AttributeProblem]):
        self.problems = dict(problems)
        self.errors = {name: problem.message for name, problem in self.problems.items()}
        super().__init__(
            "; ".join(f"attributes.{name}: {msg}" for name, msg in self.errors.items())
        )


# -- the parsed rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlayerCount:
    name: str
    team_count: int
    min_team_size: int
    max_team_size: int
    type = PLAYER_COUNT

    @property
    def min_players(self) -> int:
        return self.team_count * self.min_team_size

    @property
    def max_players(self) -> int:
        return self.team_count * self.max_team_size


@dataclass(frozen=True, slots=True)
class StringEquality:
    name: str
    type = STRING_EQUALITY


@dataclass(frozen=True, slots=True)
class NumberDifference:
    name: str
    max_difference: float
    # A leaderboard name: the number is the player's rating there, set by the server (a client
    # sending it is refused), not typed by the player.
    rating: str | None = None
    type = NUMBER_DIFFERENCE


@dataclass(frozen=True, slots=True)
class Intersection:
    name: str
    overlap: int
    type = INTERSECTION


@dataclass(frozen=True, slots=True)
class Latencies:
    name: str
    max_latency: float
    difference: float
    type = LATENCIES


AttributeRule = StringEquality | NumberDifference | Intersection | Latencies


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules in force at one expansion step (step 0 = ``initial``)."""

    step: int
    after_seconds: float
    player_count: PlayerCount
    rules: tuple[AttributeRule, ...]  # attribute rules, in declaration order

    def __getitem__(self, name: str) -> PlayerCount | AttributeRule:
        if name == self.player_count.name:
            return self.player_count
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def of_type(self, rule_type: str) -> list[AttributeRule]:
        return [rule for rule in self.rules if rule.type == rule_type]


@dataclass(frozen=True, slots=True)
class Rules:
    """A profile's parsed rules: ``steps[0]`` is ``initial``, ``steps[k]`` the k-th expansion."""

    steps: tuple[RuleSet, ...]
    # When each expansion applies, computed once: the matcher asks `step_at` for every ticket.
    expansion_seconds: tuple[float, ...] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "expansion_seconds", tuple(step.after_seconds for step in self.steps[1:])
        )

    @property
    def initial(self) -> RuleSet:
        return self.steps[0]

    @property
    def last_step(self) -> int:
        return len(self.steps) - 1

    @property
    def rated(self) -> dict[str, str]:
        """Attribute name -> leaderboard, for numbers the server takes from ratings."""
        return {r.name: r.rating for r in self.initial.of_type(NUMBER_DIFFERENCE) if r.rating}

    def step_at(self, wait_seconds: float) -> int:
        """The expansion step of a ticket that has waited ``wait_seconds``."""
        return bisect_right(self.expansion_seconds, wait_seconds)

    def effective(self, wait_seconds: float) -> RuleSet:
        """The rules in force for a ticket that has waited ``wait_seconds``."""
        return self.steps[self.step_at(wait_seconds)]

    def seconds_to_next_step(self, wait_seconds: float) -> float | None:
        """Seconds until the next expansion applies, or None after the last one."""
        step = self.step_at(wait_seconds)
        if step >= len(self.steps) - 1:
            return None
        return self.steps[step + 1].after_seconds - wait_seconds


def effective_rules(rules: Rules, wait_seconds: float) -> RuleSet:
    """The rules in force for a ticket that has waited ``wait_seconds`` (expansions applied)."""
    return rules.effective(wait_seconds)


# -- parsing --------------------------------------------------------------------------------------

_FIELDS: dict[str, tuple[str, ...]] = {
    PLAYER_COUNT: ("team_count", "min_team_size", "max_team_size"),
    STRING_EQUALITY: (),
    NUMBER_DIFFERENCE: ("max_difference",),
    INTERSECTION: ("overlap",),
    LATENCIES: ("max_latency", "difference"),
}
# How a field may move in an expansion: +1 may only grow, -1 may only shrink, 0 is fixed.
_RELAX_DIRECTION = {
    "max_difference": +1,
    "max_latency": +1,
    "difference": +1,
    "overlap": -1,
    "min_team_size": -1,
    "team_count": 0,
    "max_team_size": 0,
}


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)  # JSON has no NaN/Infinity, but Python callers might pass them
    )


def _check_field(path: str, field: str, value: Any) -> int | float:
    if field in ("team_count", "min_team_size", "max_team_size", "overlap"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RulesError(path, "must be an integer >= 1")
        return value
    if not _is_number(value) or value < 0:
        raise RulesError(path, "must be a non-negative number")
    return value


def _build(name: str, rule_type: str, values: Mapping[str, Any]) -> PlayerCount | AttributeRule:
    if rule_type == PLAYER_COUNT:
        return PlayerCount(
            name, values["team_count"], values["min_team_size"], values["max_team_size"]
        )
    if rule_type == STRING_EQUALITY:
        return StringEquality(name)
    if rule_type == NUMBER_DIFFERENCE:
        return NumberDifference(name, values["max_difference"])
    if rule_type == INTERSECTION:
        return Intersection(name, values["overlap"])
    return Latencies(name, values["max_latency"], values["difference"])


def _check_name(path: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise RulesError(path, f"must be named by a non-empty string of at most {MAX_NAME_LENGTH}")
    return name


def _parse_initial(data: Any) -> tuple[PlayerCount, list[AttributeRule]]:
    if not isinstance(data, Mapping) or not data:
        raise RulesError("rules.initial", "must be a non-empty object of named rules")
    player_count: PlayerCount | None = None
    rules: list[AttributeRule] = []
    latencies_name: str | None = None
    for name, spec in data.items():
        path = f"rules.initial.{name}"
        _check_name(path, name)
        if not isinstance(spec, Mapping):
            raise RulesError(path, 'must be an object like {"type": ..., "attributes": {...}}')
        unknown = sorted(set(spec) - {"type", "attributes", "rating"})
        if unknown:
            raise RulesError(f"{path}.{unknown[0]}", "is not allowed (use type and attributes)")
        rule_type = spec.get("type")
        if rule_type not in RULE_TYPES:
            raise RulesError(f"{path}.type", f"must be one of {', '.join(RULE_TYPES)}")
        rating = spec.get("rating")
        if "rating" in spec and (
            rule_type != NUMBER_DIFFERENCE
            or not isinstance(rating, str)
            or not _LEADERBOARD.match(rating)
        ):
            raise RulesError(
                f"{path}.rating",
                "names a leaderboard (letters, digits, - and _, at most 64) on a "
                "number_difference rule",
            )
        attrs = spec.get("attributes", {})
        if not isinstance(attrs, Mapping):
            raise RulesError(f"{path}.attributes", "must be an object")
        fields = _FIELDS[rule_type]
        extra = sorted(set(attrs) - set(fields))
        if extra:
            known = ", ".join(fields) or "nothing"
            raise RulesError(
                f"{path}.attributes.{extra[0]}", f"is not a field of {rule_type} (takes {known})"
            )
        values = {}
        for field in fields:
            if field not in attrs:
                raise RulesError(f"{path}.attributes.{field}", f"is required for {rule_type}")
            values[field] = _check_field(f"{path}.attributes.{field}", field, attrs[field])
        if rule_type == PLAYER_COUNT:
            if player_count is not None:
                raise RulesError(
                    path, f"is a second player_count rule (first: {player_count.name})"
                )
            if values["max_team_size"] < values["min_team_size"]:
                raise RulesError(f"{path}.attributes.max_team_size", "must be >= min_team_size")
            player_count = _build(name, rule_type, values)  # type: ignore[assignment]
            continue
        if rule_type == LATENCIES:
            # The latency rule picks the match's region; two of them could disagree on it.
            if latencies_name is not None:
                raise RulesError(path, f"is a second latencies rule (first: {latencies_name})")
            latencies_name = name
        built = _build(name, rule_type, values)
        if rating:
            built = replace(built, rating=rating)
        rules.append(built)  # type: ignore[arg-type]
    if player_count is None:
        raise RulesError("rules.initial", "must have one rule of type player_count")
    return player_count, rules


def _parse_seconds(key: Any) -> float:
    path = f"rules.expansions.{key}"
    if isinstance(key, bool):
        raise RulesError(path, "must be keyed by a number of seconds > 0")
    try:
        seconds = float(key)
    except (TypeError, ValueError):
        raise RulesError(path, "must be keyed by a number of seconds > 0") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise RulesError(path, "must be keyed by a number of seconds > 0")
    return seconds


def _apply_changes(key: Any, changes: Any, previous: RuleSet, seconds: float) -> RuleSet:
    base = f"rules.expansions.{key}"
    if not isinstance(changes, Mapping):
        raise RulesError(base, "must be an object of rule changes")
    by_name: dict[str, PlayerCount | AttributeRule] = {
        previous.player_count.name: previous.player_count
    }
    by_name.update((rule.name, rule) for rule in previous.rules)
    for name, change in changes.items():
        path = f"{base}.{name}"
        if name not in by_name:
            raise RulesError(path, "names no rule in rules.initial")
        rule = by_name[name]
        if not isinstance(change, Mapping):
            raise RulesError(path, "must be an object of field changes")
        change = dict(change)
        if change.get("type", rule.type) != rule.type:
            raise RulesError(f"{path}.type", f"cannot change (is {rule.type})")
        change.pop("type", None)
        if "attributes" in change:
            if set(change) != {"attributes"} or not isinstance(change["attributes"], Mapping):
                raise RulesError(f"{path}.attributes", "must be the only key, and an object")
            path, change = f"{path}.attributes", dict(change["attributes"])
        fields = _FIELDS[rule.type]
        updates = {}
        for field, value in change.items():
            field_path = f"{path}.{field}"
            if field not in fields:
                known = ", ".join(fields) or "nothing"
                raise RulesError(field_path, f"is not a field of {rule.type} (takes {known})")
            value = _check_field(field_path, field, value)
            current = getattr(rule, field)
            direction = _RELAX_DIRECTION[field]
            if direction == 0 and value != current:
                raise RulesError(field_path, f"cannot change in an expansion (stays {current})")
            if value * direction < current * direction:
                raise RulesError(
                    field_path, f"must relax the rule: {value} is stricter than {current}"
                )
            updates[field] = value
        by_name[name] = replace(rule, **updates)
    player_count = by_name[previous.player_count.name]
    assert isinstance(player_count, PlayerCount)
    return RuleSet(
        step=previous.step + 1,
        after_seconds=seconds,
        player_count=player_count,
        rules=tuple(by_name[rule.name] for rule in previous.rules),  # type: ignore[misc]
    )


def parse_rules(data: Any) -> Rules:
    """Validate a profile's rules JSON (see the module docstring) and return `Rules`.

    Raises `RulesError` whose message starts with the path of the first bad value, e.g.
    ``rules.initial.skill.attributes.max_difference must be a non-negative number``.
    """
    if isinstance(data, Rules):
        return data
    if not isinstance(data, Mapping):
        raise RulesError("rules", 'must be an object with "initial" (and optional "expansions")')
    unknown = sorted(set(data) - {"initial", "expansions"})
    if unknown:
        raise RulesError(f"rules.{unknown[0]}", 'is not allowed (only "initial", "expansions")')
    if "initial" not in data:
        raise RulesError("rules.initial", "is required")
    player_count, rules = _parse_initial(data["initial"])
    steps = [RuleSet(0, 0.0, player_count, tuple(rules))]
    expansions = data.get("expansions", {})
    if expansions is None:
        expansions = {}
    if not isinstance(expansions, Mapping):
        raise RulesError("rules.expansions", 'must be an object like {"30": {rule changes}}')
    keyed = sorted(((_parse_seconds(key), key) for key in expansions), key=lambda pair: pair[0])
    for (seconds, key), (previous_seconds, previous_key) in zip(keyed[1:], keyed, strict=False):
        if seconds == previous_seconds:
            raise RulesError(f"rules.expansions.{key}", f"repeats {previous_key}")
    for seconds, key in keyed:
        steps.append(_apply_changes(key, expansions[key], steps[-1], seconds))
    return Rules(tuple(steps))


# -- ticket attributes ----------------------------------------------------------------------------


def attributes_shape_problem(attributes: Mapping[str, Any]) -> str | None:
    """Why ``attributes`` could fit no queue's rules whatever they are (too many names, a name
    too long, a value of no rule type's shape), or None. A party member's own attributes are
    checked this far when set: which rules read them is known only when the leader queues."""
    if len(attributes) > MAX_LIST_ITEMS:
        return f"At most {MAX_LIST_ITEMS} attributes."
    for name, value in attributes.items():
        if not name or len(name) > MAX_NAME_LENGTH:
            return f"Names are 1 to {MAX_NAME_LENGTH} characters."
        problem = _value_shape_problem(value)
        if problem:
            return f"{name}: {problem}."
    return None


def _value_shape_problem(value) -> str | None:
    """Why a value fits no rule type's attribute at all (a string, a number, a list of strings,
    an object of region -> number, within the rules' limits), or None. Which rule reads it, and
    its own checks, are a queue's business when the leader queues there."""
    if isinstance(value, str):
        return (
            None if len(value) <= MAX_STRING_LENGTH else f"at most {MAX_STRING_LENGTH} characters"
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None  # finite and in range: the input policy saw to that
    if isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            return f"at most {MAX_LIST_ITEMS} items"
        if not all(isinstance(v, str) and len(v) <= MAX_STRING_LENGTH for v in value):
            return f"a list must hold strings of at most {MAX_STRING_LENGTH} characters"
        return None
    if isinstance(value, dict):
        if len(value) > MAX_LIST_ITEMS:
            return f"at most {MAX_LIST_ITEMS} regions"
        if not all(
            len(k) <= MAX_STRING_LENGTH and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in value.items()
        ):
            return f"an object must map names of at most {MAX_STRING_LENGTH} characters to numbers"
        return None
    return "must be a string, a number, a list of strings or an object of numbers"


def _check_attribute(rule: AttributeRule, value: Any) -> tuple[Any, AttributeProblem | None]:
    """Return (normalised value, None) or (None, problem)."""
    if rule.type == STRING_EQUALITY:
        if not isinstance(value, str):
            return None, Problem.NOT_STRING.of()
        if len(value) > MAX_STRING_LENGTH:
            return None, Problem.TOO_LONG.of(max_length=MAX_STRING_LENGTH)
        return value, None
    if rule.type == NUMBER_DIFFERENCE:
        if not _is_number(value):
            return None, Problem.NOT_NUMBER.of()
        return value, None
    if rule.type == INTERSECTION:
        if not isinstance(value, list | tuple) or not value:
            return None, Problem.NOT_STRING_LIST.of()
        if len(value) > MAX_LIST_ITEMS:
            return None, Problem.TOO_MANY_ITEMS.of(max_items=MAX_LIST_ITEMS)
        if not all(isinstance(item, str) and len(item) <= MAX_STRING_LENGTH for item in value):
            return None, Problem.NOT_STRING_LIST.of()
        return list(dict.fromkeys(value)), None  # duplicates would inflate the overlap
    # latencies
    if not isinstance(value, Mapping) or not value:
        return None, Problem.NOT_LATENCY_MAP.of()
    if len(value) > MAX_LIST_ITEMS:
        return None, Problem.TOO_MANY_REGIONS.of(max_regions=MAX_LIST_ITEMS)
    for region, ms in value.items():
        if not isinstance(region, str) or not region or len(region) > MAX_STRING_LENGTH:
            return None, Problem.BAD_REGION_NAME.of()
        if not _is_number(ms) or ms < 0:
            return None, Problem.BAD_LATENCY.of(region=region)
    return dict(value), None


def validate_attributes(rules: Rules | Mapping[str, Any], attributes: Any) -> dict[str, Any]:
    """Check a ticket's ``attributes`` against the rules; return a normalised copy.

    Every attribute rule needs its attribute; anything else is refused. Raises
    `AttributesError` naming every missing, unknown or mistyped attribute.
    """
    rules = parse_rules(rules)
    if not isinstance(attributes, Mapping):
        raise AttributesError({"": Problem.NOT_OBJECT.of()})
    declared = rules.initial.rules
    names = {rule.name for rule in declared}
    errors: dict[str, AttributeProblem] = {}
    for key in attributes:
        if key not in names:
            errors[str(key)] = Problem.UNKNOWN.of(known=sorted(names))
    clean: dict[str, Any] = {}
    for rule in declared:
        if rule.name not in attributes:
            errors[rule.name] = Problem.MISSING.of(rule_type=rule.type)
            continue
        value, problem = _check_attribute(rule, attributes[rule.name])
        if problem:
            errors[rule.name] = problem
        else:
            clean[rule.name] = value
    if errors:
        raise AttributesError(errors)
    return clean


def merge_party_attributes(
    rules: Rules | Mapping[str, Any], members: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Merge a party's per-player attributes into the one set its ticket carries.

    A party queues as one ticket. Each member's attributes are validated, then merged:
    ``string_equality`` values must agree; ``number_difference`` takes the members' mean (used
    for the match window and for team balance); ``intersection`` keeps the values every member
    has; ``latencies`` keeps the regions every member measured, at the worst member's latency.
    Raises `AttributesError` when members disagree or can never satisfy a rule together.
    """
    rules = parse_rules(rules)
    if not members:
        raise AttributesError({"": Problem.NO_MEMBERS.of()})
    validated = [validate_attributes(rules, member) for member in members]
    if len(validated) == 1:
        return validated[0]
    loosest = rules.steps[-1]
    merged: dict[str, Any] = {}
    errors: dict[str, AttributeProblem] = {}
    for rule in rules.initial.rules:
        values = [attrs[rule.name] for attrs in validated]
        if rule.type == STRING_EQUALITY:
            distinct = list(dict.fromkeys(values))
            if len(distinct) > 1:
                errors[rule.name] = Problem.PARTY_DISAGREE.of(values=distinct)
            else:
                merged[rule.name] = distinct[0]
        elif rule.type == NUMBER_DIFFERENCE:
            merged[rule.name] = sum(values) / len(values)
        elif rule.type == INTERSECTION:
            common = [v for v in values[0] if all(v in other for other in values[1:])]
            need = loosest[rule.name].overlap  # type: ignore[union-attr]
            if len(common) < need:
                errors[rule.name] = Problem.PARTY_TOO_FEW_IN_COMMON.of(
                    in_common=len(common), need=need
                )
            else:
                merged[rule.name] = common
        else:
            regions = [r for r in values[0] if all(r in other for other in values[1:])]
            if not regions:
                errors[rule.name] = Problem.PARTY_NO_COMMON_REGION.of()
            else:
                merged[rule.name] = {r: max(other[r] for other in values) for r in regions}
    if errors:
        raise AttributesError(errors)
    return merged
