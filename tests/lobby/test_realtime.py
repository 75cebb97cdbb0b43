"""Pushes that go missing are made good: the socket monitor (lobby.realtime) repairs a lost push
without waiting for a later event, drops are counted and logged, and dead channels leave their
groups. The Redis tests run on the services stack (REDIS_URL set)."""

import asyncio
import logging
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings as django_settings
from django.test import Client

from config.asgi import application
from lobby import realtime
from lobby.events import events_emit
from lobby.models import Player
from lobby.services import player_create_guest

pytestmark = pytest.mark.django_db(transaction=True)

needs_redis = pytest.mark.skipif(
    not django_settings.REDIS_URL, reason="the Redis channel layer needs REDIS_URL"
)


def _redis_layer(**config):
    # A prefix of its own, so that runs side by side (and earlier runs) do not meet.
    return {
        "default": {
            "BACKEND": config.pop("backend", "lobby.realtime.OneReaderRedisChannelLayer"),
            "CONFIG": {
                "hosts": [django_settings.REDIS_URL],
                "prefix": f"test-rt-{uuid.uuid4().hex[:8]}",
                **config,
            },
        }
    }


async def _socket(key, after=0):
    communicator = WebsocketCommunicator(
        application,
        f"/ws/v1/events?after={after}",
        headers=[(b"authorization", f"Token {key}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _emit(player, type="test.event"):
    [event] = await sync_to_async(events_emit)(player_ids=[player.pk], type=type, data={})
    return event


async def _eventually(predicate, timeout=1.0):
    # The repair is counted right after its events go out: allow it that moment.
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _lost_push_is_repaired(caplog):
    player, key = await sync_to_async(player_create_guest)(display_name="lossy")
    communicator = await _socket(key)
    assert await communicator.receive_nothing(timeout=0.3)
    repaired_before = realtime.stats.total["repaired"]
    started = time.monotonic()
    event = await _emit(player)
    # Every push is dropped, and no later event comes: only the monitor can bring it.
    message = await communicator.receive_json_from(timeout=2)
    took = time.monotonic() - started
    assert message == event.as_message()
    assert took >= realtime.GRACE  # it really came by repair, not by a push
    await _eventually(lambda: realtime.stats.total["repaired"] == repaired_before + 1)
    assert "replayed from the database" in caplog.text
    assert await communicator.receive_nothing(timeout=0.5)  # once, not again
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_lost_last_push_is_repaired_without_a_later_event(settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "lobby.realtime.LossyInMemoryChannelLayer",
            "CONFIG": {"drop_rate": 1.0},
        }
    }
    caplog.set_level(logging.WARNING, logger="lobby.realtime")
    await _lost_push_is_repaired(caplog)


@needs_redis
@pytest.mark.asyncio
async def test_a_lost_last_push_is_repaired_on_the_redis_layer(settings, caplog):
    settings.CHANNEL_LAYERS = _redis_layer(
        backend="lobby.realtime.LossyRedisChannelLayer", drop_rate=1.0
    )
    caplog.set_level(logging.WARNING, logger="lobby.realtime")
    await _lost_push_is_repaired(caplog)


class SlowInMemoryChannelLayer(realtime.LossyInMemoryChannelLayer):
    """A process that lags: every push reaches its sockets `delay` seconds late (as when the
    process is seconds behind its queue), and pushes of type "test.lost" never do."""

    delay = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.late: set[asyncio.Task] = set()

    async def group_send(self, group, message):
        if message["message"].get("type") == "test.lost":
            return

        async def later():
            await asyncio.sleep(self.delay)
            await realtime.LossyInMemoryChannelLayer.group_send(self, group, message)

        task = asyncio.get_running_loop().create_task(later())
        self.late.add(task)
        task.add_done_callback(self.late.discard)


async def _lagging_process(settings):
    """A lagging process with steady traffic to another player: (socket, player, key, stop)."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.lobby.test_realtime.SlowInMemoryChannelLayer"}
    }
    busy, busy_key = await sync_to_async(player_create_guest)(display_name="busy")
    busy_socket = await _socket(busy_key)
    stop = asyncio.Event()

    async def traffic():
        while not stop.is_set():
            await _emit(busy, type="test.traffic")
            await asyncio.sleep(0.1)

    traffic_task = asyncio.get_running_loop().create_task(traffic())
    # While nothing has come through yet the first pushes look lost (nothing tells a stalled
    # queue from an empty one); from here on pushes come out steadily, a second late.
    await asyncio.sleep(1.6)
    player, key = await sync_to_async(player_create_guest)(display_name="watched")
    communicator = await _socket(key)

    async def done():
        stop.set()
        await traffic_task
        await communicator.disconnect()
        await busy_socket.disconnect()

    return communicator, player, done


@pytest.mark.asyncio
async def test_a_push_still_queued_in_a_lagging_process_is_not_repaired(settings):
    # Before, a socket more than GRACE behind the push log was repaired from the database even
    # when its push was merely queued behind others: load added to a process already behind.
    communicator, player, done = await _lagging_process(settings)
    repaired_before = realtime.stats.total["repaired"]
    started = time.monotonic()
    event = await _emit(player)
    assert await communicator.receive_json_from(timeout=3) == event.as_message()
    assert time.monotonic() - started >= SlowInMemoryChannelLayer.delay - 0.05  # the push
    assert realtime.stats.total["repaired"] == repaired_before
    await done()


@pytest.mark.asyncio
async def test_a_lost_push_is_repaired_within_two_seconds_while_the_process_lags(settings):
    # The process handles pushes logged well after the lost one: it was lost, not queued.
    communicator, player, done = await _lagging_process(settings)
    repaired_before = realtime.stats.total["repaired"]
    started = time.monotonic()
    event = await _emit(player, type="test.lost")
    assert await communicator.receive_json_from(timeout=2) == event.as_message()
    assert time.monotonic() - started < 2
    assert realtime.stats.total["repaired"] == repaired_before + 1
    await done()


@pytest.mark.asyncio
async def test_pushes_that_arrive_are_not_replayed_again(settings):
    # The monitor must not turn every push into a database read: a socket that got its push
    # is left alone (the repair counter stays put), and events arrive once, in order.
    player, key = await sync_to_async(player_create_guest)(display_name="steady")
    communicator = await _socket(key)
    repaired_before = realtime.stats.total["repaired"]
    events = [await _emit(player, type=f"test.{n}") for n in range(5)]
    received = [await communicator.receive_json_from(timeout=2) for _ in events]
    assert [m["seq"] for m in received] == [e.seq for e in events]
    assert await communicator.receive_nothing(timeout=realtime.GRACE + 2 * realtime.TICK)
    assert realtime.stats.total["repaired"] == repaired_before
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_an_open_socket_marks_its_player_seen_within_a_tick():
    player, key = await sync_to_async(player_create_guest)(display_name="present")
    await Player.objects.filter(pk=player.pk).aupdate(last_seen_at=None)
    communicator = await _socket(key)
    await asyncio.sleep(realtime.TICK * 3)
    refreshed = await Player.objects.aget(pk=player.pk)
    assert refreshed.last_seen_at is not None
    await communicator.disconnect()


@needs_redis
@pytest.mark.asyncio
async def test_dead_channels_leave_the_group_and_live_sockets_stay(settings):
    # A web process that died (kill -9, OOM) never discards its sockets' channels. With a short
    # group_expiry they age out, while the monitor renews the live sockets' membership.
    settings.CHANNEL_LAYERS = _redis_layer(group_expiry=3)
    player, key = await sync_to_async(player_create_guest)(display_name="restarted")
    group = realtime.player_group(player.pk)
    dead_process = RedisChannelLayer(
        hosts=[django_settings.REDIS_URL], prefix=get_channel_layer().prefix
    )
    dead_channel = await dead_process.new_channel()
    await dead_process.group_add(group, dead_channel)

    communicator = await _socket(key)
    layer = get_channel_layer()
    group_key = layer._group_key(group)
    members = {m.decode() for m in await layer.connection(0).zrange(group_key, 0, -1)}
    assert dead_channel in members and len(members) == 2

    await asyncio.sleep(5)  # longer than group_expiry: only renewal keeps a member
    event = await _emit(player)  # group_send discards expired members first
    assert await communicator.receive_json_from(timeout=2) == event.as_message()
    members = {m.decode() for m in await layer.connection(0).zrange(group_key, 0, -1)}
    assert dead_channel not in members
    assert len(members) == 1
    await communicator.disconnect()
    await dead_process.flush()


@needs_redis
@pytest.mark.asyncio
async def test_a_push_the_layer_drops_is_counted_warned_and_repaired(settings, caplog):
    # A channel of a process that no longer reads (its queue full at capacity 1) makes
    # channels_redis drop pushes with a mere INFO line: we count it, warn, and /metrics shows it.
    settings.CHANNEL_LAYERS = _redis_layer(capacity=1)
    caplog.set_level(logging.INFO)
    player, key = await sync_to_async(player_create_guest)(display_name="crowded")
    group = realtime.player_group(player.pk)
    stuck = RedisChannelLayer(hosts=[django_settings.REDIS_URL], prefix=get_channel_layer().prefix)
    await stuck.group_add(group, await stuck.new_channel())
    communicator = await _socket(key)
    dropped_before = realtime.stats.total["dropped"]

    first, second = await _emit(player), await _emit(player)
    received = [await communicator.receive_json_from(timeout=3) for _ in range(2)]
    assert [m["seq"] for m in received] == [first.seq, second.seq]
    assert realtime.stats.total["dropped"] > dropped_before
    assert any(
        r.levelno == logging.WARNING and "over capacity" in r.getMessage() for r in caplog.records
    )
    await asyncio.sleep(realtime.TICK * 2)  # the monitor adds the process's counts to Redis
    staff = await sync_to_async(Client)()
    metrics = await sync_to_async(staff.get)("/metrics")
    assert metrics.status_code == 200
    [line] = [
        line
        for line in metrics.content.decode().splitlines()
        if line.startswith("relaylobby_pushes_dropped_total ")
    ]
    assert int(line.split()[1]) >= 1
    await communicator.disconnect()
    await stuck.flush()
