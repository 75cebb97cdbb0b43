"""Sockets per player and per address are capped (issue 12: one token opened 1,000 sockets)."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from lobby.services import player_create_guest
from lobby.socketcaps import CLOSE_REPLACED, CLOSE_TOO_MANY, socket_caps

pytestmark = pytest.mark.django_db(transaction=True)


async def _open(key, ip="198.51.100.7"):
    communicator = WebsocketCommunicator(
        application, "/ws/v1/events", headers=[(b"authorization", f"Token {key}".encode())]
    )
    communicator.scope["client"] = (ip, 50000)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _closed_with(communicator) -> int | None:
    while True:
        message = await communicator.receive_output(timeout=2)
        if message["type"] == "websocket.close":
            return message.get("code")


@pytest.mark.asyncio
async def test_a_player_s_oldest_socket_closes_when_it_opens_one_too_many(settings):
    settings.SOCKETS_PER_PLAYER = 3
    player, key = await sync_to_async(player_create_guest)(display_name="many tabs")
    sockets = [await _open(key) for _ in range(3)]

    newest = await _open(key)

    assert await _closed_with(sockets[0]) == CLOSE_REPLACED
    assert await sockets[1].receive_nothing(timeout=0.2)
    assert socket_caps.count(player_id=player.pk) == 3
    for communicator in [*sockets[1:], newest]:
        await communicator.disconnect()
    assert socket_caps.count(player_id=player.pk) == 0


@pytest.mark.asyncio
async def test_an_address_over_its_count_gets_new_sockets_closed(settings):
    settings.SOCKETS_PER_IP = 2
    keys = [(await sync_to_async(player_create_guest)(display_name=f"p{n}"))[1] for n in range(3)]
    first, second = await _open(keys[0]), await _open(keys[1])

    refused = await _open(keys[2])
    elsewhere = await _open(keys[2], ip="203.0.113.9")

    assert await _closed_with(refused) == CLOSE_TOO_MANY
    assert await elsewhere.receive_nothing(timeout=0.2)
    await first.disconnect()
    again = await _open(keys[2])  # a slot came free
    assert await again.receive_nothing(timeout=0.2)
    for communicator in (second, elsewhere, again):
        await communicator.disconnect()
    assert socket_caps.count(ip="198.51.100.7") == 0
