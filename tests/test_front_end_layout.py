"""The pages' shared pieces exist once (issue 13): the event stream is a module of its own, the
sentence and connection-indicator helpers and the announcer and current-lobby banner are not
copied between pages (copies had already diverged); the queue page renders the matcher's
explanations from data, it does not parse the server's English back."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "lobby" / "static").rglob("*.js")) + sorted(
    (ROOT / "matchmaking" / "static").rglob("*.js")
)
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


def _defining(pattern: str, files) -> list[str]:
    found = []
    for path in files:
        found += [path.name] * len(re.findall(pattern, path.read_text(), re.M))
    return found


def test_each_shared_script_helper_is_defined_once():
    assert _defining(r"^export class EventStream\b", SCRIPTS) == ["stream.js"]
    assert _defining(r"^export const STREAM_STATUS\b", SCRIPTS) == ["stream.js"]
    assert _defining(r"function sentence\(", SCRIPTS) == ["words.js"]
    assert _defining(r"^\s*(?:const|function) setConnection\b.*conn--", SCRIPTS) == []
    assert _defining(r"conn conn--\$\{", SCRIPTS) == ["stream.js"]
    api = (ROOT / "lobby" / "static" / "lobby" / "api.js").read_text()
    assert "WebSocket" not in api


def test_the_announcer_and_the_current_lobby_banner_are_written_once():
    assert _defining(r'id="announcer"', TEMPLATES) == ["base.html"]
    assert _defining(r"You are in the lobby <strong>", TEMPLATES) == ["_current_lobby.html"]


def test_the_queue_page_reads_explanations_as_data_not_english():
    words = (ROOT / "matchmaking" / "static" / "matchmaking" / "rules-words.js").read_text()
    queue = (ROOT / "matchmaking" / "static" / "matchmaking" / "queue.js").read_text()
    assert "explain(ticket.explanation)" in queue
    assert ".exec(" not in words and "blockedBy" not in words
    assert "explain(ticket.blocked_by)" not in queue
