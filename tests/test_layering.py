"""Imports flow one way: matchmaking -> ratings -> lobby -> relays (design.md §1). An app may import
below it, never one above it: relays knows nothing of lobbies or queues, lobby nothing of queues.

Every module of every app is read (migrations included), and every import counts wherever it
stands: at the top, inside a function (a lazy import), under `if TYPE_CHECKING`, through
`importlib.import_module("...")`, `apps.get_model("app", ...)`, or a model named as a string
("lobby.Lobby") in a relation. Only config/ sits above all three and may import any of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["moderation", "matchmaking", "ratings", "lobby", "relays"]  # each may import those after
RELATIONS = {"ForeignKey", "OneToOneField", "ManyToManyField"}


def _forbidden(app: str) -> set[str]:
    return set(ORDER[: ORDER.index(app)])


def _string_target(value: str) -> str | None:
    """The app a string names: "lobby.services" (a module) or "lobby.Lobby" (a model)."""
    head, dot, _ = value.partition(".")
    return head if dot and head in ORDER else None


def imports_of(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, top-level package) of everything a module imports or names, lazily or not."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            strings = [a for a in args if isinstance(a, str)]
            if name in ("import_module", "__import__") and strings:
                found.append((node.lineno, strings[0].split(".")[0]))
            elif name == "get_model" and strings:
                # apps.get_model("lobby", "Lobby") or apps.get_model("lobby.Lobby")
                found.append((node.lineno, strings[0].split(".")[0]))
            elif name in RELATIONS and strings and _string_target(strings[0]):
                found.append((node.lineno, _string_target(strings[0])))
            for keyword in node.keywords:  # ForeignKey(to="lobby.Lobby")
                if name in RELATIONS and keyword.arg == "to":
                    value = getattr(keyword.value, "value", None)
                    if isinstance(value, str) and _string_target(value):
                        found.append((node.lineno, _string_target(value)))
    return found


def violations() -> list[str]:
    problems = []
    for app in ORDER:
        forbidden = _forbidden(app)
        for path in sorted((ROOT / app).rglob("*.py")):
            for line, target in imports_of(path.read_text(encoding="utf-8"), str(path)):
                if target in forbidden:
                    problems.append(f"{path.relative_to(ROOT)}:{line} {app} imports {target}")
    return problems


def test_no_app_imports_one_above_it():
    problems = violations()
    assert not problems, "imports against matchmaking -> lobby -> relays:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import matchmaking.pages",
        "from matchmaking import pages",
        "def view():\n    from matchmaking.services import ticket_snapshot\n",
        "if TYPE_CHECKING:\n    from matchmaking.models import Ticket\n",
        "import importlib\nimportlib.import_module('matchmaking.pages')",
        "from django.apps import apps\napps.get_model('matchmaking', 'Ticket')",
        "ticket = models.ForeignKey('matchmaking.Ticket', on_delete=models.CASCADE)",
        "ticket = models.OneToOneField(to='matchmaking.Ticket', on_delete=models.CASCADE)",
    ],
)
def test_the_check_sees_every_kind_of_import(source):
    # The checker itself: each way lobby could reach matchmaking is caught.
    assert "matchmaking" in {target for _, target in imports_of(source)}


def test_the_check_allows_the_direction():
    source = "from relays import services\nfrom lobby.models import Lobby\nimport django"
    assert not {t for _, t in imports_of(source)} & _forbidden("lobby") - {"lobby"}
    assert "relays" not in _forbidden("lobby") and "lobby" in _forbidden("relays")
