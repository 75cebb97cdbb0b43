"""Outcomes of the relay lifecycle, for other apps to follow (the lobby app subscribes).

`relays` imports nothing of its subscribers: they connect receivers to these signals. Each signal is
sent *inside* the transaction that records the outcome, so a receiver's database writes (the lobby
state, the players' event rows) commit or roll back with it. Receivers must defer side effects
(tasks, socket pushes) with `transaction.on_commit`.

Keyword arguments: `session` (a `relays.models.RelaySession`) or `seat` (a `relays.models.Seat`),
and `reason` (text a player can read) where given.
"""

from django.dispatch import Signal

session_ready = Signal()  # session: endpoint, session token and seat tokens are stored
session_failed = Signal()  # session, reason: it never became ready (deleted at Edgegap)
session_closed = Signal()  # session, reason: closed by us (its delete follows), or gone at Edgegap
seat_authorized = Signal()  # seat: a late seat got its own user token
seat_authorization_failed = Signal()  # seat, reason
seat_revoked = Signal()  # seat: its token no longer works on the relay
