"""Who may open /ws/v1/events: a token holder, or a browser session from one of our pages."""

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from config.asgi import application
from lobby.realtime import player_push
from lobby.services import player_create_guest

pytestmark = pytest.mark.django_db(transaction=True)


def _user(name="player"):
    return get_user_model().objects.create_user(username=name, password="x" * 12)


async def _connect(headers):
    communicator = WebsocketCommunicator(application, "/ws/v1/events", headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


def _session_cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.mark.asyncio
async def test_token_header_opens_the_socket_and_pushes_arrive():
    from asgiref.sync import sync_to_async

    player, key = await sync_to_async(player_create_guest)(display_name="player")
    communicator, connected = await _connect([(b"authorization", f"Token {key}".encode())])
    assert connected
    await sync_to_async(player_push)(player_id=player.pk, message={"type": "hello"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "hello"}
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.parametrize("header", [b"Token nope", b"Bearer abc", b"Token ", b"garbage"])
async def test_bad_token_header_is_refused(header):
    _, connected = await _connect([(b"authorization", header)])
    assert not connected


@pytest.mark.asyncio
async def test_no_credentials_is_refused():
    _, connected = await _connect([])
    assert not connected


@pytest.mark.asyncio
async def test_session_cookie_from_our_origin_opens_the_socket():
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(_session_cookie)(await sync_to_async(_user)())
    headers = [
        (b"cookie", f"sessionid={cookie}".encode()),
        (b"origin", b"http://localhost:8000"),
        (b"host", b"localhost:8000"),  # same origin: scheme, host and port
    ]
    communicator, connected = await _connect(headers)
    assert connected
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.parametrize("origin", [b"https://evil.example", None])
async def test_session_cookie_from_a_foreign_or_missing_origin_is_refused(origin):
    from asgiref.sync import sync_to_async

    cookie = await sync_to_async(_session_cookie)(await sync_to_async(_user)())
    headers = [(b"cookie", f"sessionid={cookie}".encode())]
    if origin:
        headers.append((b"origin", origin))
    _, connected = await _connect(headers)
    assert not connected


@pytest.mark.asyncio
async def test_frames_a_client_sends_are_ignored_and_the_socket_stays_open():
    from asgiref.sync import sync_to_async

    player, key = await sync_to_async(player_create_guest)(display_name="chatty")
    communicator, connected = await _connect([(b"authorization", f"Token {key}".encode())])
    assert connected
    await communicator.send_to(text_data="ping")  # not JSON
    await communicator.send_to(bytes_data=b"\x00\x01")
    await communicator.send_to(text_data='{"type": "hello"}')
    assert await communicator.receive_nothing(timeout=0.2)
    await sync_to_async(player_push)(player_id=player.pk, message={"type": "still-here"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "still-here"}
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_lost_push_is_filled_in_from_the_database_before_the_next_one():
    from asgiref.sync import sync_to_async

    from lobby.events import events_emit

    player, key = await sync_to_async(player_create_guest)(display_name="gappy")
    communicator, connected = await _connect([(b"authorization", f"Token {key}".encode())])
    assert connected

    def emit_twice_push_second():
        first = events_emit(player_ids=[player.pk], type="test.first", data={})[0]
        second = events_emit(player_ids=[player.pk], type="test.second", data={})[0]
        return first, second

    # Both rows are written; only the second is pushed (the first push was "lost").
    from unittest import mock

    with mock.patch("lobby.events._push"):
        first, second = await sync_to_async(emit_twice_push_second)()
    await sync_to_async(player_push)(player_id=player.pk, message=second.as_message())
    received = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    assert [m["seq"] for m in received] == [first.seq, second.seq]
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()
