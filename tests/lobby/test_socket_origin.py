"""A browser's session cookie opens the socket only from this service's own origin: scheme, host
and port (issue 12: `http://localhost:9999`, another app on the same machine, passed)."""

import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _cookie():
    user = get_user_model().objects.create_user(username=f"browser-{uuid.uuid4().hex[:8]}")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def _opens(origin: bytes, host: bytes = b"localhost:8000", **scope) -> bool:
    cookie = await sync_to_async(_cookie)()
    headers = [(b"cookie", f"sessionid={cookie}".encode()), (b"origin", origin), (b"host", host)]
    communicator = WebsocketCommunicator(application, "/ws/v1/events", headers=headers)
    communicator.scope.update(scope)
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected


@pytest.mark.asyncio
async def test_the_page_s_own_origin_opens_the_socket():
    assert await _opens(b"http://localhost:8000")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "origin",
    [
        b"http://localhost:9999",  # another port: another application
        b"https://localhost:8000",  # another scheme
        b"http://localhost",  # port 80, not 8000
        b"http://evil.example:8000",
        b"null",  # a sandboxed frame or a file:// page
        b"localhost:8000",
    ],
)
async def test_another_origin_is_refused(origin):
    assert not await _opens(origin)


@pytest.mark.asyncio
async def test_default_ports_and_tls_match(settings):
    settings.ALLOWED_HOSTS = ["lobby.example.com"]

    assert await _opens(b"https://lobby.example.com", b"lobby.example.com", scheme="wss")
    assert await _opens(b"https://lobby.example.com", b"lobby.example.com:443", scheme="wss")
    assert not await _opens(b"http://lobby.example.com", b"lobby.example.com", scheme="wss")


@pytest.mark.asyncio
async def test_behind_a_tls_proxy_the_proxy_header_says_https(settings):
    settings.ALLOWED_HOSTS = ["lobby.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = await sync_to_async(_cookie)()
    headers = [
        (b"cookie", f"sessionid={cookie}".encode()),
        (b"origin", b"https://lobby.example.com"),
        (b"host", b"lobby.example.com"),
        (b"x-forwarded-proto", b"https"),
    ]
    communicator = WebsocketCommunicator(application, "/ws/v1/events", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_trusted_origin_from_the_settings_opens_the_socket(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://play.example.com"]

    assert await _opens(b"https://play.example.com")
    assert not await _opens(b"https://play.example.com:444")
