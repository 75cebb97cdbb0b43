"""The real-time plumbing across real processes: a task run by the Celery worker reaches a socket
held by uvicorn, through Redis (embedded on the default stack, REDIS_URL's on services)."""

import asyncio
import json
import time

import pytest
import websockets
from asgiref.sync import sync_to_async

from lobby.events import events_emit
from lobby.services import player_create_guest
from tests.live import wait_until

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _player_with_token(name):
    return player_create_guest(display_name=name)


async def _receive(socket, timeout):
    return json.loads(await asyncio.wait_for(socket.recv(), timeout))


def test_task_in_worker_reaches_socket_held_by_web(live_stack):
    alice, key = _player_with_token("alice")
    bob, _ = _player_with_token("bob")

    async def scenario():
        headers = {"Authorization": f"Token {key}"}
        async with websockets.connect(
            f"{live_stack.ws_url}/ws/v1/events", additional_headers=headers
        ) as ws:
            # Bob's message must not reach Alice; hers must, in order after it was sent.
            live_stack.enqueue("lobby.push_to_player", bob.pk, {"type": "test", "for": "bob"})
            live_stack.enqueue("lobby.push_to_player", alice.pk, {"type": "test", "for": "alice"})
            return await _receive(ws, timeout=15)

    message = asyncio.run(scenario())
    assert message == {"type": "test", "for": "alice"}, live_stack.log_tail()


def test_idle_socket_stays_open_on_redis_layer(live_stack):
    # redis-py 8's 5 s default socket timeout made channels-redis drop idle sockets
    # (channels_redis#422): an idle socket must survive well past that and still get pushes.
    idle, key = _player_with_token("idle")

    async def scenario():
        headers = {"Authorization": f"Token {key}"}
        async with websockets.connect(
            f"{live_stack.ws_url}/ws/v1/events", additional_headers=headers, ping_interval=None
        ) as ws:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 15)  # 15 s of silence, no keepalive pings
            live_stack.enqueue("lobby.push_to_player", idle.pk, {"type": "after-idle"})
            return await _receive(ws, timeout=15)

    assert asyncio.run(scenario()) == {"type": "after-idle"}, live_stack.log_tail()


def test_socket_without_credentials_is_refused(live_stack):
    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{live_stack.ws_url}/ws/v1/events"):
                pass
        return refused.value.response.status_code

    assert asyncio.run(scenario()) == 403


def test_a_lost_push_reaches_the_web_process_socket_within_two_seconds(live_stack, settings):
    # The test process commits the event and its push is lost on the way (drop rate 1); the
    # socket is held by the real uvicorn, whose monitor reads the push log in Redis and replays
    # the row from the database. No later event comes to reveal the gap.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "lobby.realtime.LossyRedisChannelLayer",
            "CONFIG": {
                "hosts": [live_stack.redis_url],
                "prefix": "relaylobby:channels",
                "drop_rate": 1.0,
            },
        }
    }
    player, key = _player_with_token("lost")

    async def scenario():
        headers = {"Authorization": f"Token {key}"}
        async with websockets.connect(
            f"{live_stack.ws_url}/ws/v1/events", additional_headers=headers
        ) as ws:
            await asyncio.sleep(0.5)  # connected and watched by the web process's monitor
            started = time.monotonic()
            [event] = await sync_to_async(events_emit)(
                player_ids=[player.pk], type="test.lost", data={"n": 1}
            )
            message = await _receive(ws, timeout=2)
            return event, message, time.monotonic() - started

    event, message, took = asyncio.run(scenario())
    assert message == event.as_message(), live_stack.log_tail()
    assert took < 2
    # The web process says so (logged just after the replay went out).
    wait_until(
        lambda: "replayed from the database" in live_stack.log_tail(200),
        "the repair's WARNING",
        live_stack,
        timeout=5,
    )
