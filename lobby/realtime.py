"""The real-time edge: pushing to a player's sockets, and making good what a push loses.

Every socket a player holds joins that player's group, so one push reaches all of the player's
tabs and game clients. Channel layers deliver at most once (channels_redis drops a push when the
receiving process's queue is full, and a push can be lost with a process), so the player's event
stream (lobby.events) is the truth and three things close the gaps:

- a socket that sees a later `seq` than it expects replays the missing rows first (consumers);
- every push of a stream event is also appended to a *push log* (a Redis stream, or a list in
  this process for the in-memory layer). Each web process runs one `SocketMonitor` that reads the
  log a few times a second and, for the players it holds sockets of, notices a socket still
  behind the log GRACE seconds later and has it replay from the database. So a push that is the
  last one a player gets is repaired within about a second, without waiting for a later event,
  and an idle process does one cheap read per tick whatever its socket count;
- every SWEEP seconds the monitor also compares every socket with the database in one query,
  writes presence for all of them in one UPDATE, and renews their group memberships in one
  Redis pipeline (so the layer's `group_expiry` can be short: a dead process's channels leave
  the groups within minutes instead of a day).

Drops the layer reports are counted and logged as WARNING, as are repairs; /metrics shows both.

Sync code pushes through one event loop thread per process that owns the layer's Redis
connections: `async_to_sync` would build a new loop, thread and Redis connection per call (~2 ms).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import weakref
from collections import defaultdict, deque
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.utils import timezone

if TYPE_CHECKING:
    from lobby.consumers import EventsConsumer

logger = logging.getLogger(__name__)

# The consumer method that handles a push: `player.event` -> `EventsConsumer.player_event`.
PUSH_TYPE = "player.event"

# How often each web process reads the push log, and how long a socket may lag the log before
# it is repaired (a push normally lands within milliseconds; under load within a few hundred).
TICK = 0.25
GRACE = 0.5
# Presence, the full database check and the group renewal, for all sockets at once.
SWEEP = 30.0
# Bounds on the push log (a Redis stream): ~minutes of pushes at a thousand per second.
LOG_MAXLEN = 100_000
LOG_READ_COUNT = 10_000
# Players repaired in one query, and the rows one repair query may return.
REPAIR_BATCH = 500
REPAIR_ROWS = 20_000
# The longest a sync caller waits for its push to be handed to Redis.
SEND_TIMEOUT = 5.0


def player_group(player_id: int) -> str:
    return f"player.{player_id}"


def player_push(*, player_id: int, message: dict) -> None:
    """Send `message` to every socket of the player. Safe to call from sync code only."""
    players_push([(player_id, message)])


def players_push(items: list[tuple[int, dict]]) -> None:
    """Push each `(player_id, message)`; messages with a `seq` also go to the push log.

    Sync code only. Raises when the layer cannot be reached; the rows stay committed, so the
    sockets get them from the push log's repair or on reconnect, and pollers by REST.
    """
    layer = get_channel_layer()
    if isinstance(layer, RedisChannelLayer):
        _sender().run(_push_all(layer, items), SEND_TIMEOUT)
        return
    # The in-memory layer lives on the server's loop (tests, no Redis): async_to_sync reaches it.
    _local_log.append([(pid, msg["seq"]) for pid, msg in items if "seq" in msg])
    async_to_sync(_send_groups)(layer, items)


async def _push_all(layer, items):
    entries = [f"{pid}:{msg['seq']}" for pid, msg in items if "seq" in msg]
    if entries:
        # Logged before sending: a monitor that reads it before the push lands waits GRACE.
        try:
            await _redis_for_loop(layer).xadd(
                _log_key(layer), {"e": ",".join(entries)}, maxlen=LOG_MAXLEN, approximate=True
            )
        except Exception:
            logger.warning("push log not written; sockets rely on the periodic database check")
    await _send_groups(layer, items)
    await stats.flush(layer)


async def _send_groups(layer, items):
    await asyncio.gather(
        *(
            layer.group_send(player_group(pid), {"type": PUSH_TYPE, "message": msg})
            for pid, msg in items
        )
    )


# --- One sending loop per process ------------------------------------------------------------


class _SenderLoop:
    """An event loop on a daemon thread; the channel layer's Redis pool for it lives on it."""

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="realtime-sender", daemon=True
        )
        self.thread.start()

    def run(self, coroutine, timeout):
        # Waiting keeps one thread's pushes in order (each player sees increasing seqs).
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


_sender_loop: _SenderLoop | None = None
_sender_lock = threading.Lock()


def _sender() -> _SenderLoop:
    global _sender_loop
    loop = _sender_loop
    # A forked child (a Celery prefork worker) does not inherit the thread: start its own.
    if loop is None or loop.pid != os.getpid():
        with _sender_lock:
            if _sender_loop is None or _sender_loop.pid != os.getpid():
                _sender_loop = _SenderLoop()
            loop = _sender_loop
    return loop


# --- Redis clients, one per event loop -------------------------------------------------------

# Keyed weakly: a test's closed loop takes its client with it.
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _redis_for_loop(layer):
    import redis.asyncio

    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        host = layer.hosts[0]
        client = redis.asyncio.Redis.from_url(host["address"]) if "address" in host else None
        if client is None:
            client = redis.asyncio.Redis(**host)
        _redis_clients[loop] = client
    return client


def _log_key(layer) -> str:
    return f"{layer.prefix}:pushlog"


def _stats_key(layer) -> str:
    return f"{layer.prefix}:stats"


# --- Counting drops and repairs --------------------------------------------------------------


class _Stats:
    """Process counters, added to Redis (shared by all processes) when one is reachable."""

    FIELDS = ("dropped", "repaired")

    def __init__(self):
        self.lock = threading.Lock()
        self.total = dict.fromkeys(self.FIELDS, 0)
        self.unflushed = dict.fromkeys(self.FIELDS, 0)

    def add(self, field, n):
        with self.lock:
            self.total[field] += n
            self.unflushed[field] += n

    def _take(self):
        with self.lock:
            taken, self.unflushed = self.unflushed, dict.fromkeys(self.FIELDS, 0)
        return {field: n for field, n in taken.items() if n}

    async def flush(self, layer):
        if not isinstance(layer, RedisChannelLayer):
            return
        taken = self._take()
        if not taken:
            return
        try:
            pipe = _redis_for_loop(layer).pipeline(transaction=False)
            for field, n in taken.items():
                pipe.hincrby(_stats_key(layer), field, n)
            await pipe.execute()
        except Exception:
            for field, n in taken.items():  # counted again at the next flush
                with self.lock:
                    self.unflushed[field] += n


stats = _Stats()


class _OverCapacityFilter(logging.Filter):
    """channels_redis says at INFO that a group_send dropped pushes: count it, warn about it."""

    MESSAGE = "%s of %s channels over capacity in group %s"

    def filter(self, record):
        if record.msg == self.MESSAGE and record.args:
            dropped, _, group = record.args
            stats.add("dropped", int(dropped))
            logger.warning(
                "channel layer dropped %s push(es) to %s (over capacity); "
                "the sockets are repaired from the database",
                dropped,
                group,
            )
            return False
        return record.levelno >= self.level_before

    def __init__(self, level_before):
        super().__init__()
        self.level_before = level_before


def _install_drop_counter():
    channels_logger = logging.getLogger("channels_redis.core")
    if any(isinstance(f, _OverCapacityFilter) for f in channels_logger.filters):
        return
    # The drop is logged at INFO; it must reach the filter whatever the configured level.
    channels_filter = _OverCapacityFilter(channels_logger.getEffectiveLevel())
    channels_logger.addFilter(channels_filter)
    channels_logger.setLevel(logging.INFO)


_install_drop_counter()


def metrics_lines() -> list[str]:
    """Prometheus lines for /metrics: all processes' counts when Redis holds them."""
    totals = dict(stats.total)
    layer = get_channel_layer()
    if isinstance(layer, RedisChannelLayer):
        import redis

        host = layer.hosts[0]
        try:
            client = redis.Redis.from_url(host["address"], socket_timeout=2)
            raw = client.hgetall(_stats_key(layer))
            client.close()
            totals = {field: int(raw.get(field.encode(), 0)) for field in _Stats.FIELDS}
        except Exception:
            logger.warning("push counters unavailable: Redis did not answer")
    return [
        "# HELP relaylobby_pushes_dropped_total Pushes the channel layer refused (over "
        "capacity); each is repaired from the database.",
        "# TYPE relaylobby_pushes_dropped_total counter",
        f"relaylobby_pushes_dropped_total {totals['dropped']}",
        "# HELP relaylobby_pushes_repaired_total Sockets found behind their player's event "
        "stream and refilled from the database (a push was lost).",
        "# TYPE relaylobby_pushes_repaired_total counter",
        f"relaylobby_pushes_repaired_total {totals['repaired']}",
    ]


# --- The push log ----------------------------------------------------------------------------


class _LocalLog:
    """The push log of the in-memory layer: one process, so a bounded list in memory."""

    def __init__(self, maxlen=LOG_MAXLEN):
        self.lock = threading.Lock()
        self.entries: deque = deque(maxlen=maxlen)
        self.next_id = 0

    def append(self, pairs):
        if pairs:
            with self.lock:
                self.entries.append((self.next_id, pairs))
                self.next_id += 1

    def cursor(self):
        with self.lock:
            return self.next_id

    def read(self, cursor):
        with self.lock:
            found = [pairs for entry_id, pairs in self.entries if entry_id >= cursor]
            return found, self.next_id


_local_log = _LocalLog()


class _RedisLogReader:
    def __init__(self, layer):
        self.layer = layer
        self.cursor = None

    async def read(self):
        redis = _redis_for_loop(self.layer)
        key = _log_key(self.layer)
        if self.cursor is None:
            # Start at the end: a socket replays from the database on connect.
            last = await redis.xrevrange(key, count=1)
            self.cursor = last[0][0] if last else b"0-0"
            return []
        answer = await redis.xread({key: self.cursor}, count=LOG_READ_COUNT)
        pairs = []
        for _, entries in answer:
            for entry_id, fields in entries:
                self.cursor = entry_id
                for item in fields[b"e"].decode().split(","):
                    player_id, _, seq = item.partition(":")
                    pairs.append((int(player_id), int(seq)))
        return pairs


class _LocalLogReader:
    def __init__(self):
        self.cursor = _local_log.cursor()

    async def read(self):
        batches, self.cursor = _local_log.read(self.cursor)
        return [pair for batch in batches for pair in batch]


# --- The per-process socket monitor ----------------------------------------------------------


def _players_check(player_ids, touch_ids):
    """One thread call: presence for `touch_ids`, the latest seq of each of `player_ids`."""
    from lobby.models import Player

    now = timezone.now()
    latest = {}
    for start in range(0, len(touch_ids), 5000):
        Player.objects.filter(pk__in=touch_ids[start : start + 5000]).update(last_seen_at=now)
    for start in range(0, len(player_ids), 5000):
        latest.update(
            Player.objects.filter(pk__in=player_ids[start : start + 5000]).values_list(
                "pk", "event_seq"
            )
        )
    return latest


def _events_for_repair(after_by_player: dict[int, int]) -> dict[int, list[dict]]:
    """Each player's stored events after the given seq, in one query: the repair of a tick."""
    from django.db.models import Q

    from lobby.models import PlayerEvent

    wanted = Q()
    for player_id, after in after_by_player.items():
        wanted |= Q(player_id=player_id, seq__gt=after)
    found = defaultdict(list)
    for event in PlayerEvent.objects.filter(wanted).order_by("player_id", "seq")[:REPAIR_ROWS]:
        found[event.player_id].append(event.as_message())
    return found


class SocketMonitor:
    """One per event loop (= per web process): gap repair, presence and group renewal for all
    of the process's sockets, each in one batch."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.layer = get_channel_layer()
        self.sockets: dict[int, set[EventsConsumer]] = defaultdict(set)
        self.latest: dict[int, tuple[int, float]] = {}  # player -> (seq in the log, seen at)
        self.touch_pending: set[int] = set()
        self.reader = (
            _RedisLogReader(self.layer)
            if isinstance(self.layer, RedisChannelLayer)
            else _LocalLogReader()
        )
        expiry = getattr(self.layer, "group_expiry", 86400)
        self.sweep_every = min(SWEEP, expiry / 3)
        self.next_sweep = time.monotonic() + self.sweep_every
        self.task = self.loop.create_task(self._run())

    def add(self, consumer):
        self.sockets[consumer.player.pk].add(consumer)
        self.touch_pending.add(consumer.player.pk)

    def remove(self, consumer):
        player_id = consumer.player.pk
        consumers = self.sockets.get(player_id)
        if consumers is not None:
            consumers.discard(consumer)
            if not consumers:
                del self.sockets[player_id]
                self.latest.pop(player_id, None)
                self.touch_pending.discard(player_id)
        if not self.sockets:
            self.task.cancel()  # nothing to watch: a test's loop can close without a pending task
            if _monitors.get(self.loop) is self:
                del _monitors[self.loop]

    async def _run(self):
        quiet_until = 0.0
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis or the database away: say so now and then, not four times a second.
                if time.monotonic() >= quiet_until:
                    logger.exception("socket monitor tick failed; retrying")
                    quiet_until = time.monotonic() + 30

    async def tick(self):
        now = time.monotonic()
        for player_id, seq in await self.reader.read():
            if player_id in self.sockets:
                seen = self.latest.get(player_id)
                if seen is None or seq > seen[0]:
                    self.latest[player_id] = (seq, now)
        due = []
        for player_id, (seq, seen_at) in list(self.latest.items()):
            behind = [c for c in self.sockets.get(player_id, ()) if c.last_seq < seq]
            if not behind:
                del self.latest[player_id]
            elif now - seen_at >= GRACE:
                del self.latest[player_id]
                due += behind
        if due:
            await self.repair(due)
        if now >= self.next_sweep:
            self.next_sweep = now + self.sweep_every
            await self.sweep()
        elif self.touch_pending:
            touch, self.touch_pending = list(self.touch_pending), set()
            await database_sync_to_async(_players_check)([], touch)
        await stats.flush(self.layer)

    async def sweep(self):
        player_ids = list(self.sockets)
        self.touch_pending.clear()
        latest = await database_sync_to_async(_players_check)(player_ids, player_ids)
        due = [
            consumer
            for player_id, seq in latest.items()
            for consumer in self.sockets.get(player_id, ())
            if consumer.last_seq < seq
        ]
        if due:
            await self.repair(due)
        await self._renew_groups()

    async def _renew_groups(self):
        if not isinstance(self.layer, RedisChannelLayer) or not self.sockets:
            return
        # channels_redis forgets a member group_expiry seconds after its group_add: renew the
        # live ones (one pipeline) so only dead processes' channels age out.
        now = time.time()
        pipe = self.layer.connection(0).pipeline(transaction=False)
        for player_id, consumers in self.sockets.items():
            key = self.layer._group_key(player_group(player_id))
            pipe.zadd(key, {c.channel_name: now for c in consumers})
            pipe.expire(key, self.layer.group_expiry)
        await pipe.execute()

    async def repair(self, consumers):
        """Replay what each socket lacks, from one query per REPAIR_BATCH players."""
        for start in range(0, len(consumers), REPAIR_BATCH):
            batch = consumers[start : start + REPAIR_BATCH]
            after: dict[int, int] = {}
            for consumer in batch:
                player_id = consumer.player.pk
                after[player_id] = min(after.get(player_id, consumer.last_seq), consumer.last_seq)
            found = await database_sync_to_async(_events_for_repair)(after)
            for consumer in batch:
                if consumer not in self.sockets.get(consumer.player.pk, ()):
                    continue  # closed meanwhile
                # The socket's lock: a push handled meanwhile is not sent twice or out of order.
                sent = await consumer.deliver(found.get(consumer.player.pk, ()))
                if sent:
                    stats.add("repaired", 1)
                    logger.warning(
                        "socket of player %s was missing %s event(s) up to seq %s; "
                        "replayed from the database",
                        consumer.player.pk,
                        sent,
                        consumer.last_seq,
                    )


_monitors: dict = {}


def socket_monitor() -> SocketMonitor:
    """This event loop's monitor, started with its first socket."""
    loop = asyncio.get_running_loop()
    monitor = _monitors.get(loop)
    if monitor is None or monitor.task.done():
        monitor = _monitors[loop] = SocketMonitor()
    return monitor


# --- Fault injection for tests and benchmarks ------------------------------------------------


class _LossyMixin:
    """Drops a share of pushes at random, silently, like a full queue or a lost process."""

    def __init__(self, *args, drop_rate: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop_rate = drop_rate

    async def group_send(self, group, message):
        if message.get("type") == PUSH_TYPE and random.random() < self.drop_rate:
            return
        await super().group_send(group, message)


class LossyRedisChannelLayer(_LossyMixin, RedisChannelLayer):
    pass


class LossyInMemoryChannelLayer(_LossyMixin, InMemoryChannelLayer):
    pass
