"""The local relay emulator: Edgegap's relay REST API and a real UDP relay on loopback.

No machine in development or CI reaches Edgegap, so this stands in for it, speaking the same
contract (shared docs: edgegap-relay.md): the production client only sees another base URL and
token. Knobs make it misbehave on purpose (slow, rate limited, failing, never ready), so the
service's retries and timeouts can be tested.

- `python manage.py relay_emulator --port 8001` runs it (see that command for the flags).
- `EmulatorThread` runs it inside a test process.
- `state` holds sessions and knobs, `http` the REST API, `udp` the relay, `server` the glue.

The emulator does not need Django; only its management command does.
"""

from relays.emulator.server import Emulator, EmulatorThread
from relays.emulator.state import Knobs

__all__ = ["Emulator", "EmulatorThread", "Knobs"]
