"""The real-time edge: pushing to a player's sockets, and making good what a push loses.

Every socket a player holds joins that player's group, so one push reaches all of the player's
tabs and game clients. Channel layers deliver at most once (channels_redis drops a push when the
receiving process's queue is full, and a push can be lost with a process), so the player's event
stream (lobby.events) is the truth and three things close the gaps:

- a socket that sees a later `seq` than it expects replays the missing rows first (consumers);
- every push of a stream event is also appended to a *push log* (a Redis stream, or a list in
  this process for the in-memory layer), and the push carries its log entry's time. Each web
  process runs one `SocketMonitor` that reads the log a few times a second and, for the players
  it holds sockets of, repairs from the database a socket that is still behind the log once its
  push is known to be lost rather than still queued: the process has already handled a push
  logged OVERTAKE_MS later (pushes to one process travel in one ordered queue), or nothing has
  reached the process for QUIET seconds after GRACE (the queue is empty), or MAX_WAIT passed.
  So a push that is the last one a player gets is repaired within about a second, and a process
  that lags behind a burst is not handed database work for pushes that are merely late;
- every SWEEP seconds the monitor also compares every socket with the database in one query,
  writes presence for all of them in one UPDATE, and renews their group memberships in one
  Redis pipeline (so the layer's `group_expiry` can be short: a dead process's channels leave
  the groups within minutes instead of a day).

Drops the layer reports are counted and logged as WARNING, as are repairs; /metrics shows both.

Sync code pushes through one event loop thread per process that owns the layer's Redis
connections: `async_to_sync` would build a new loop, thread and Redis connection per call (~2 ms).
The web process receives through `OneReaderRedisChannelLayer`: one task drains the process's
queue in batches, instead of channels_redis' four Redis round trips and a lock hand-over among
all waiting sockets per message. The monitor also keeps the cyclic garbage collector's full
walks (seconds at 10,000 sockets) to a known rate (`_CollectorPolicy`).
"""

from __future__ import annotations

import asyncio
import gc
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
# it is repaired when nothing else tells lost from late (a push normally lands within
# milliseconds). A push is known lost once the process has handled one logged OVERTAKE_MS after
# it (the slack covers a sender's time between its log write and its send), or when no push at
# all has arrived for QUIET seconds; MAX_WAIT bounds the wait behind a process that lags.
TICK = 0.25
GRACE = 0.5
OVERTAKE_MS = 250
QUIET = 0.25
MAX_WAIT = 5.0
# Presence, the full database check and the group renewal, for all sockets at once.
SWEEP = 30.0
# Bounds on the push log (a Redis stream): ~minutes of pushes at a thousand per second.
LOG_MAXLEN = 100_000
LOG_READ_COUNT = 10_000
# Players repaired in one query, and the rows one repair query may return.
REPAIR_BATCH = 500
REPAIR_ROWS = 20_000
# Group memberships renewed by one Redis script call.
RENEW_BATCH = 2000
_RENEW_SCRIPT = """
    local now = ARGV[#KEYS + 1]
    local expiry = ARGV[#KEYS + 2]
    for i = 1, #KEYS do
        redis.call('ZADD', KEYS[i], now, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    end
"""
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
    log_ms = _local_log.append([(pid, msg["seq"]) for pid, msg in items if "seq" in msg])
    async_to_sync(_send_groups)(layer, items, log_ms)


async def _push_all(layer, items):
    entries = [f"{pid}:{msg['seq']}" for pid, msg in items if "seq" in msg]
    log_ms = None
    if entries:
        # Logged before sending, so a monitor never sees a push before its log entry; the push
        # carries the entry's time (Redis' clock, the same for every sender).
        try:
            entry_id = await _redis_for_loop(layer).xadd(
                _log_key(layer), {"e": ",".join(entries)}, maxlen=LOG_MAXLEN, approximate=True
            )
            log_ms = _entry_ms(entry_id)
        except Exception:
            logger.warning("push log not written; sockets rely on the periodic database check")
    await _send_groups(layer, items, log_ms)
    await stats.flush(layer)


def _entry_ms(entry_id) -> int:
    return int(entry_id.split(b"-", 1)[0])


async def _send_groups(layer, items, log_ms=None):
    sends = [
        (player_group(pid), {"type": PUSH_TYPE, "message": msg, "log": log_ms})
        for pid, msg in items
    ]
    if isinstance(layer, OneReaderRedisChannelLayer):
        await layer.group_send_many(sends)
    else:
        await asyncio.gather(*(layer.group_send(group, message) for group, message in sends))


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

    def append(self, pairs) -> int | None:
        """Log the pairs; the entry's time in ms (this process's clock: the layer is local)."""
        if not pairs:
            return None
        with self.lock:
            log_ms = int(time.time() * 1000)
            self.entries.append((self.next_id, log_ms, pairs))
            self.next_id += 1
        return log_ms

    def cursor(self):
        with self.lock:
            return self.next_id

    def read(self, cursor):
        with self.lock:
            found = [(ms, pairs) for entry_id, ms, pairs in self.entries if entry_id >= cursor]
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
        found = []
        for _, entries in answer:
            for entry_id, fields in entries:
                self.cursor = entry_id
                log_ms = _entry_ms(entry_id)
                for item in fields[b"e"].decode().split(","):
                    player_id, _, seq = item.partition(":")
                    found.append((int(player_id), int(seq), log_ms))
        return found


class _LocalLogReader:
    def __init__(self):
        self.cursor = _local_log.cursor()

    async def read(self):
        batches, self.cursor = _local_log.read(self.cursor)
        return [(pid, seq, log_ms) for log_ms, batch in batches for pid, seq in batch]


# --- The per-process socket monitor ----------------------------------------------------------


def _players_check(player_ids, touch_ids):
    """One thread call: presence for `touch_ids`, the latest seq of each of `player_ids`.

    On PostgreSQL the ids go as one array parameter: psycopg splits a query text with thousands
    of placeholders in Python, seconds for 10,000 ids, holding the GIL the sockets' event loop
    needs.
    """
    from django.db import connection

    from lobby.models import Player

    now = timezone.now()
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Player._meta.db_table)
        with connection.cursor() as cursor:
            if touch_ids:
                # Rows an emit holds are skipped (seen again next sweep): a plain UPDATE of
                # thousands of rows locks them in scan order, lobby.events in pk order, and
                # the two deadlock under load.
                cursor.execute(
                    f"UPDATE {table} SET last_seen_at = %s WHERE id IN ("  # noqa: S608
                    f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id "
                    "FOR UPDATE SKIP LOCKED)",
                    [now, sorted(touch_ids)],
                )
            if not player_ids:
                return {}
            cursor.execute(
                f"SELECT id, event_seq FROM {table} WHERE id = ANY(%s)",  # noqa: S608
                [list(player_ids)],
            )
            return dict(cursor.fetchall())
    # SQLite (one writer at a time, no deadlock): the ORM, in slices under its variable limit.
    latest = {}
    for start in range(0, len(touch_ids), 500):
        Player.objects.filter(pk__in=touch_ids[start : start + 500]).update(last_seen_at=now)
    for start in range(0, len(player_ids), 500):
        latest.update(
            Player.objects.filter(pk__in=player_ids[start : start + 500]).values_list(
                "pk", "event_seq"
            )
        )
    return latest


def _events_for_repair(after_by_player: dict[int, int]) -> dict[int, list[dict]]:
    """Each player's stored events after the given seq, in one query: the repair of a tick."""
    from django.db import connection
    from django.db.models import Q

    from lobby.models import PlayerEvent

    if connection.vendor == "postgresql":
        # Two array parameters, not two placeholders per player (see _players_check).
        table = connection.ops.quote_name(PlayerEvent._meta.db_table)
        events = PlayerEvent.objects.raw(
            f"SELECT e.* FROM {table} e JOIN unnest(%s::bigint[], %s::bigint[]) AS w(pid, after)"  # noqa: S608
            " ON e.player_id = w.pid AND e.seq > w.after ORDER BY e.player_id, e.seq LIMIT %s",
            [list(after_by_player), list(after_by_player.values()), REPAIR_ROWS],
        )
    else:
        # One OR node built in one go (`|=` in a loop copies the tree each time: quadratic).
        wanted = Q(
            *(Q(player_id=pid, seq__gt=after) for pid, after in after_by_player.items()),
            _connector=Q.OR,
        )
        events = PlayerEvent.objects.filter(wanted).order_by("player_id", "seq")[:REPAIR_ROWS]
    found = defaultdict(list)
    for event in events:
        found[event.player_id].append(event.as_message())
    return found


class SocketMonitor:
    """One per event loop (= per web process): gap repair, presence and group renewal for all
    of the process's sockets, each in one batch."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.layer = get_channel_layer()
        self.sockets: dict[int, set[EventsConsumer]] = defaultdict(set)
        # player -> (seq in the log, when this monitor read it, the log entry's ms)
        self.latest: dict[int, tuple[int, float, int]] = {}
        # What has come through this process's queue: the newest log entry of a push handled,
        # and when a push was last handled. They tell a lost push from one still queued.
        self.handled_ms = 0
        self.handled_at = 0.0
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

    def push_handled(self, log_ms):
        """A consumer handled a push (called for every push: cheap)."""
        self.handled_at = time.monotonic()
        if log_ms is not None and log_ms > self.handled_ms:
            self.handled_ms = log_ms

    def add(self, consumer):
        collector.socket_opened()
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
        collector.socket_closed()
        if not self.sockets:
            collector.release()
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
        for player_id, seq, log_ms in await self.reader.read():
            if player_id in self.sockets:
                seen = self.latest.get(player_id)
                if seen is None or seq > seen[0]:
                    self.latest[player_id] = (seq, now, log_ms)
        quiet = now - self.handled_at >= QUIET
        due = []
        for player_id, (seq, seen_at, log_ms) in list(self.latest.items()):
            behind = [c for c in self.sockets.get(player_id, ()) if c.last_seq < seq]
            if not behind:
                del self.latest[player_id]
                continue
            waited = now - seen_at
            lost = (
                self.handled_ms >= log_ms + OVERTAKE_MS  # later pushes got through
                or (quiet and waited >= GRACE)  # nothing is queued for this process
                or waited >= MAX_WAIT
            )
            if not lost:
                continue
            # A push taken off the queue but not handled yet is on its way, not lost.
            behind = [c for c in behind if not _pending(self.layer, c.channel_name)]
            if behind:
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
        collector.after_sweep(sum(len(c) for c in self.sockets.values()))

    async def _renew_groups(self):
        if not isinstance(self.layer, RedisChannelLayer) or not self.sockets:
            return
        # channels_redis forgets a member group_expiry seconds after its group_add: renew the
        # live ones (one pipeline) so only dead processes' channels age out.
        # One script call per RENEW_BATCH sockets: a pipeline of two commands per socket,
        # packed and parsed on the event loop, blocked it 0.5-1.2 s at 10,000 sockets (the
        # script: ~0.1 s, mostly Redis' own time).
        now = time.time()
        pairs = [
            (self.layer._group_key(player_group(player_id)), consumer.channel_name)
            for player_id, consumers in self.sockets.items()
            for consumer in consumers
        ]
        connection = self.layer.connection(0)
        for start in range(0, len(pairs), RENEW_BATCH):
            batch = pairs[start : start + RENEW_BATCH]
            await connection.eval(
                _RENEW_SCRIPT,
                len(batch),
                *(key for key, _ in batch),
                *(channel for _, channel in batch),
                now,
                self.layer.group_expiry,
            )

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


def _pending(layer, channel_name) -> int:
    """Messages taken off the layer's queue for this channel but not handed to it yet."""
    if isinstance(layer, OneReaderRedisChannelLayer):
        inbox = layer.inboxes.get(channel_name)
    elif isinstance(layer, RedisChannelLayer):
        inbox = layer.receive_buffer.get(channel_name)
    else:
        inbox = getattr(layer, "channels", {}).get(channel_name)
    return inbox.qsize() if inbox is not None else 0


class _CollectorPolicy:
    """Keeps Python's cyclic garbage collector from stopping the process for seconds.

    A socket is ~170 tracked objects, so 10,000 sockets are ~1.7 million; each full
    collection walks all of them: 1-3 s measured on a loaded 2-core machine, every 10-40 s
    while sockets open or pushes flow, every socket's pushes stalled meanwhile. After each
    sweep, and whenever OPENS sockets have opened since the last freeze, the objects alive are
    frozen, out of the collector's walks; the walks then cover only what is new. Frozen objects
    that become cyclic garbage (a closed socket's) are not reclaimed while frozen, so after
    enough closes (a quarter of the open sockets, at least CLOSES), or FULL_EVERY seconds, one
    full collection runs (one pause, at a known rate) and the survivors are frozen again.
    """

    OPENS = 500
    CLOSES = 1000
    FULL_EVERY = 600.0

    def __init__(self):
        self.opened = 0
        self.closed = 0
        self.last_full = time.monotonic()

    def socket_opened(self):
        self.opened += 1
        if self.opened >= self.OPENS:
            self.opened = 0
            gc.freeze()

    def socket_closed(self):
        self.closed += 1

    def after_sweep(self, open_sockets: int):
        now = time.monotonic()
        if (
            self.closed >= max(self.CLOSES, open_sockets // 4)
            or now - self.last_full >= self.FULL_EVERY
        ):
            gc.unfreeze()
            gc.collect()
            self.closed, self.last_full = 0, now
        self.opened = 0
        gc.freeze()

    def release(self):
        """No sockets left: hand everything back to the collector."""
        gc.unfreeze()
        self.closed = 0


collector = _CollectorPolicy()

_monitors: dict = {}


def socket_monitor() -> SocketMonitor:
    """This event loop's monitor, started with its first socket."""
    loop = asyncio.get_running_loop()
    monitor = _monitors.get(loop)
    if monitor is None or monitor.task.done():
        monitor = _monitors[loop] = SocketMonitor()
    return monitor


# --- Receiving: one reader per process ------------------------------------------------------


class OneReaderRedisChannelLayer(RedisChannelLayer):
    """channels_redis, with the receiving side of a process's channels done by one task.

    channels_redis hands a lock among every waiting receiver (each socket holds a pending lock
    acquire, and dropping one from the waiters is linear in their number) and spends four Redis
    round trips per message on a backup queue. Here one reader per event loop pops the process's
    queue in batches (BZPOPMIN, then ZPOPMIN of what else waits: two round trips per batch) and
    puts each message in its channel's inbox; `receive` waits on the inbox alone. A message
    popped but not handled is lost if the process dies; the push log repairs exactly that (and
    channels_redis' own in-memory buffer loses the same).
    """

    RECEIVE_BATCH = 1000

    # Every (channel key, message) of a batch of group sends in one call: expired messages
    # cleaned once per key, the capacity kept, each message at its own score (their order).
    GROUP_SEND_MANY = """
        local n = #KEYS
        local expiry = tonumber(ARGV[3 * n + 1])
        local now = tonumber(ARGV[3 * n + 2])
        local cleaned = {}
        local dropped = 0
        for i = 1, n do
            local key = KEYS[i]
            if not cleaned[key] then
                redis.call('ZREMRANGEBYSCORE', key, 0, now - expiry)
                cleaned[key] = true
            end
            if redis.call('ZCOUNT', key, '-inf', '+inf') < tonumber(ARGV[n + i]) then
                redis.call('ZADD', key, ARGV[2 * n + i], ARGV[i])
                redis.call('EXPIRE', key, expiry)
            else
                dropped = dropped + 1
            end
        end
        return dropped
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inboxes: dict[str, asyncio.Queue] = {}
        # Channels whose receiver went away: a push still queued for one is not kept for
        # nobody (the newest CLOSED_KEPT are remembered; channel names are never reused).
        self._closed: dict[str, None] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._reader_loop = None

    CLOSED_KEPT = 20_000

    async def receive(self, channel):
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        self._ensure_reader(self.non_local_name(channel))
        inbox = self.inboxes.get(channel)
        if inbox is None:
            inbox = self.inboxes[channel] = asyncio.Queue()
        try:
            message = await inbox.get()
        except asyncio.CancelledError:
            # The receiver is gone (its consumer ended, a long-poll timed out).
            if self.inboxes.get(channel) is inbox:
                del self.inboxes[channel]
            self._closed[channel] = None
            if len(self._closed) > self.CLOSED_KEPT:
                del self._closed[next(iter(self._closed))]
            raise
        if inbox.empty() and self.inboxes.get(channel) is inbox:
            del self.inboxes[channel]  # a later message makes a new one; none kept for the dead
        return message

    async def group_send_many(self, sends: list[tuple[str, dict]]):
        """`group_send` for many groups in two round trips instead of four per group: one
        pipeline reads every group's members, one script queues every message."""
        if self.ring_size != 1:
            await asyncio.gather(*(self.group_send(group, message) for group, message in sends))
            return
        connection = self.connection(0)
        now = time.time()
        pipe = connection.pipeline(transaction=False)
        for group, _ in sends:
            key = self._group_key(group)
            pipe.zremrangebyscore(key, min=0, max=int(now) - self.group_expiry)
            pipe.zrange(key, 0, -1)
        members = (await pipe.execute())[1::2]
        keys, messages, capacities = [], [], []
        for (_, message), channels in zip(sends, members, strict=True):
            by_key: dict[str, list[str]] = {}
            for raw in channels:
                channel = raw.decode()
                by_key.setdefault(self.prefix + self.non_local_name(channel), []).append(channel)
            for key, names in by_key.items():
                keys.append(key)
                messages.append(self.serialize({**message, "__asgi_channel__": names}))
                capacities.append(self.get_capacity(names[0]))
        if not keys:
            return
        scores = [now + i * 1e-6 for i in range(len(keys))]
        dropped = await connection.eval(
            self.GROUP_SEND_MANY,
            len(keys),
            *keys,
            *messages,
            *capacities,
            *scores,
            self.expiry,
            now,
        )
        if dropped:
            stats.add("dropped", int(dropped))
            logger.warning(
                "channel layer dropped %s push(es) (a process's queue over capacity); "
                "the sockets are repaired from the database",
                dropped,
            )

    def _ensure_reader(self, real_channel):
        loop = asyncio.get_running_loop()
        if self._reader_loop is not loop:
            # A new loop (tests run one per test): the old loop's inboxes and reader are dead.
            self._reader_loop, self.inboxes, self._readers, self._closed = loop, {}, {}, {}
        task = self._readers.get(real_channel)
        if task is None or task.done():
            self._readers[real_channel] = loop.create_task(self._read(real_channel))

    async def _read(self, real_channel):
        key = self.prefix + real_channel
        quiet_until = 0.0
        while True:
            connection = self.connection(self.consistent_hash(real_channel))
            try:
                popped = await connection.bzpopmin(key, timeout=self.brpop_timeout)
                if popped is None:
                    continue
                members = [popped[1]]
                members += [m for m, _ in await connection.zpopmin(key, self.RECEIVE_BATCH)]
            except asyncio.CancelledError:
                raise
            except Exception:
                if time.monotonic() >= quiet_until:
                    logger.exception("channel layer receive failed; retrying")
                    quiet_until = time.monotonic() + 30
                await asyncio.sleep(1)
                continue
            for raw in members:
                self._deliver(self.deserialize(raw))

    def _deliver(self, message):
        channels = message.pop("__asgi_channel__", ())
        for channel in [channels] if isinstance(channels, str) else channels:
            inbox = self.inboxes.get(channel)
            if inbox is None:
                if channel in self._closed:
                    continue
                inbox = self.inboxes[channel] = asyncio.Queue()
            elif inbox.qsize() >= self.capacity:
                # A receiver this far behind (a stalled socket): its oldest push goes, and
                # the monitor repairs it from the database.
                inbox.get_nowait()
                stats.add("dropped", 1)
            inbox.put_nowait(message)


# --- Fault injection for tests and benchmarks ------------------------------------------------


class _LossyMixin:
    """Drops a share of pushes at random, silently, like a full queue or a lost process."""

    def __init__(self, *args, drop_rate: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop_rate = drop_rate

    def _keep(self, message):
        return message.get("type") != PUSH_TYPE or random.random() >= self.drop_rate

    async def group_send(self, group, message):
        if self._keep(message):
            await super().group_send(group, message)

    async def group_send_many(self, sends):
        await super().group_send_many([(g, m) for g, m in sends if self._keep(m)])


class LossyRedisChannelLayer(_LossyMixin, OneReaderRedisChannelLayer):
    pass


class LossyInMemoryChannelLayer(_LossyMixin, InMemoryChannelLayer):
    pass
