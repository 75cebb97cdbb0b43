"""The local relay emulator: Edgegap's relay REST API and a real UDP relay on loopback.

No machine in development or CI reaches Edgegap, so this stands in for it, speaking the same
contract (shared docs: edgegap-relay.md): the production client only sees another base URL and
token. It is deliberately no kinder than Edgegap: answers carry no token until the session is
ready (and list its users in any of the shapes the contract allows), authorize-user answers 409
until then, and the list is offset-paginated. Knobs make it misbehave on purpose (rate limited,
failing, slow, answers lost after the work is done, sessions never ready, hosts timing out,
strict about IPs, pages vanishing), so the service's retries and timeouts can be tested; they
are described on `Knobs` and in docs/relays.md.

- `python manage.py relay_emulator --port 8001` runs it (see that command for the flags).
- `EmulatorThread` runs it inside a test process.
- `state` holds sessions and knobs, `http` the REST API, `udp` the relay, `server` the glue.

The emulator does not need Django; only its management command does.
"""

from relays.emulator.server import Emulator, EmulatorThread
from relays.emulator.state import Knobs

__all__ = ["Emulator", "EmulatorThread", "Knobs"]
