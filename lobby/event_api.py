"""`GET /api/v1/players/me/events?after=<seq>&wait=<s>`: the event stream by polling.

An async view, not a DRF one: a long-poll holds its request for up to 30 s, and under ASGI a sync
view would hold one of the process's few sync threads for all that time. While it waits it
listens on the player's channel-layer group, like a socket does, then re-reads the database,
which stays the truth.
"""

import asyncio
import math

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.throttling import SimpleRateThrottle

from lobby.authentication import is_token_authorization, user_for_authorization
from lobby.errors import error_body
from lobby.models import Player
from lobby.realtime import player_group
from lobby.selectors import events_after
from lobby.services import player_for_user, player_touch
from lobby.throttles import IpThrottle, PlayerThrottle

MAX_WAIT = 30


def _authenticate(request, session_user) -> Player | None:
    header = request.headers.get("Authorization")
    user = user_for_authorization(header) if header is not None else session_user
    if user is None or not user.is_authenticated:
        return None
    return player_for_user(user)


def _throttled(request, player) -> float | None:
    request.user = player.user
    for throttle_class in (PlayerThrottle, IpThrottle):
        throttle: SimpleRateThrottle = throttle_class()
        if not throttle.allow_request(request, None):
            return throttle.wait() or 1
    return None


def _int(raw, name, low, high):
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def _release_connection():
    # Runs in the request's sync thread: `connection` resolves to that thread's connection.
    connection.close()


def _page(player, after):
    return [event.as_message() for event in events_after(player=player, after=after)]


@csrf_exempt  # a GET-only view that changes nothing: answer other methods with our 405
async def player_events(request):
    if request.method != "GET":  # in the API's error shape, like the DRF views' 405
        body = error_body("method_not_allowed", f'Method "{request.method}" not allowed.')
        return JsonResponse(body, status=405, headers={"Allow": "GET"})
    session_user = await request.auser() if "Authorization" not in request.headers else None
    player = await sync_to_async(_authenticate)(request, session_user)
    if player is None:
        # The same codes as the DRF views: no token, or a token that does not work.
        if is_token_authorization(request.headers.get("Authorization")):
            body = error_body("authentication_failed", "Invalid token.")
        else:
            body = error_body("not_authenticated", "Send 'Authorization: Token <key>' or sign in.")
        return JsonResponse(body, status=401, headers={"WWW-Authenticate": "Token"})
    wait_for = await sync_to_async(_throttled)(request, player)
    if wait_for is not None:
        seconds = math.ceil(wait_for)
        body = error_body("throttled", "Too many requests; slow down.", retry_after=seconds)
        return JsonResponse(body, status=429, headers={"Retry-After": str(seconds)})
    try:
        after = _int(request.GET.get("after", 0), "after", 0, 2**63 - 1)
        wait = _int(request.GET.get("wait", 0), "wait", 0, MAX_WAIT)
    except ValueError as exc:
        return JsonResponse(error_body("invalid", str(exc)), status=400)
    await sync_to_async(player_touch)(player)

    events = await sync_to_async(_page)(player, after)
    if not events and wait:
        events = await _wait_for_events(player, after, wait)
    last_seq = events[-1]["seq"] if events else after
    return JsonResponse({"events": events, "last_seq": last_seq})


async def _wait_for_events(player, after, wait):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = player_group(player.pk)
    # Listen first, then read: an event committed in between is in the read or wakes us.
    await layer.group_add(group, channel)
    try:
        events = await sync_to_async(_page)(player, after)
        if not events:
            # Hand the database connection back while waiting: otherwise every waiting poll
            # holds one (a pool slot on PostgreSQL) for up to 30 s, and a few dozen idle clients
            # starve every other request.
            await sync_to_async(_release_connection)()
            try:
                await asyncio.wait_for(layer.receive(channel), wait)
            except TimeoutError:
                return []
            events = await sync_to_async(_page)(player, after)
        return events
    finally:
        await layer.group_discard(group, channel)
