"""Why a ticket is still searching, as data for clients (issue 13): the page renders the words.

The matcher keeps one short English line per ticket (`Ticket.blocked_by`, for operators and logs).
Clients get `explanation_data(...)`: which rule holds the ticket, of what type, at which expansion
step, with the rule's parameters at that step (from the profile, not from the sentence) and the
counts the matcher reported. The line's grammar is read here, once, next to the tests that run the
real matcher (tests/matchmaking/test_explanations.py), so a change to it fails a Python test
instead of silently breaking a page's regexes.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from matchmaking.rules import Rules

# "number_difference(skill): no 3 other players within 10 of 1520 (found 1)"
_RULE_LINE = re.compile(r"^(?P<type>[a-z_]+)\((?P<name>[^)]*)\): (?P<detail>.*)$", re.S)
_NEEDED = re.compile(r"\bno (?:(?P<n>\d+) other players|other player)\b")
_FOUND = re.compile(r"\(found (?P<found>\d+)")
_QUALITY = re.compile(r"; nearest player: predicted quality (?P<q>[0-9.]+)$")
_PARTY = re.compile(r"^a party of (?P<size>\d+) cannot fit a team of at most (?P<most>\d+)")
_NO_REGION = re.compile(r"^no region within [0-9.]+ ms \(best: (?P<region>.+) (?P<ms>[0-9.]+) ms\)")

KINDS = ("waiting", "rule", "no_group", "invalid", "other")


def explanation_data(*, blocked_by: str, step: int, rules: Rules | None) -> dict[str, Any]:
    """The ticket's explanation as data:

    - `kind`: `waiting` (no matcher pass yet), `rule` (one rule leaves too few players),
      `no_group` (each rule alone passes, not all together), `invalid` (its attributes no longer
      fit the profile: it will never match), `other`;
    - `problem` (kind `rule`): `too_few` (too few other players pass the rule: `needed`,
      `found`), `party_too_large` (`party_size` above the rule's `max_team_size`), `no_region`
      (no region under the ticket's own limit: `best_region`, `best_ms`), or None;
    - `rule`, `type`: the rule's name and type (`rule`, and `invalid` when one rule is named);
    - `step`: the expansion step; `parameters`: that rule's settings at that step;
    - `needed`, `found`: other players the rule needs and found; `quality`: in a rated queue, the
      predicted quality against the nearest player; `text`: the matcher's own line.
    """
    text = blocked_by or ""
    data: dict[str, Any] = {
        "kind": "other", "rule": None, "type": None, "step": step, "parameters": {},
        "problem": None, "needed": None, "found": None, "quality": None, "text": text or None,
    }  # fmt: skip
    if not text:
        data["kind"] = "waiting"
        return data
    quality = _QUALITY.search(text)
    if quality:
        data["quality"] = float(quality["q"])
        text = text[: quality.start()]
    if text.startswith("attributes no longer fit"):
        data["kind"] = "invalid"
        named = text.partition(": ")[2].split(" ", 1)[0]
        _describe_rule(data, named, rules, step)
        return data
    if text.startswith("no match yet"):
        data["kind"] = "no_group"
        return data
    line = _RULE_LINE.match(text)
    if not line:
        return data
    data["kind"] = "rule"
    data["type"] = line["type"]
    # string_equality over several names reads "mode, map": the first is enough to find it.
    _describe_rule(data, line["name"].split(",")[0].strip(), rules, step)
    data["type"] = line["type"]
    detail = line["detail"]
    if party := _PARTY.match(detail):
        data.update(problem="party_too_large", party_size=int(party["size"]))
    elif region := _NO_REGION.match(detail):
        data.update(problem="no_region", best_region=region["region"], best_ms=float(region["ms"]))
    elif needed := _NEEDED.search(detail):
        data["problem"] = "too_few"
        data["needed"] = int(needed["n"]) if needed["n"] else 1
        if found := _FOUND.search(detail):
            data["found"] = int(found["found"])
    return data


def _describe_rule(data: dict, name: str, rules: Rules | None, step: int) -> None:
    if not name or rules is None:
        return
    ruleset = rules.steps[min(step, rules.last_step)]
    try:
        rule = ruleset[name]
    except KeyError:
        return
    data["rule"], data["type"] = rule.name, rule.type
    data["parameters"] = {k: v for k, v in asdict(rule).items() if k != "name" and v is not None}
