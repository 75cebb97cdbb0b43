"""The operators' audit hook: admin actions of any app say what an operator did, and the
`moderation` app (which keeps the audit log) records it.

An app's admin calls `operator_action(...)`; it cannot import `moderation` (the import direction
matchmaking -> lobby -> relays has moderation on top, docs/moderation.md), so the record goes
through this signal, which moderation's AppConfig.ready connects. Receivers run in the caller's
thread and transaction: the entry commits or rolls back with the action.
"""

from django.dispatch import Signal

# kwargs: user (the operator), action (a short verb: "lobby.end"), target (a model instance or
# None), reason (why, free text), details (a small JSON-able dict)
operator_acted = Signal()


def operator_action(
    *, user, action: str, target=None, targets=(), reason: str = "", **details
) -> None:
    """Record that `user` did `action` to `target` (or to each of `targets`, one entry each: an
    admin action on a selection) in the audit log, when moderation is on."""
    for one in [target] if not targets else list(targets):
        operator_acted.send(
            sender=None, user=user, action=action, target=one, reason=reason, details=details
        )
