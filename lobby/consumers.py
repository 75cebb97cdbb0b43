import asyncio
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from lobby.realtime import PUSH_TYPE, player_group, socket_monitor
from lobby.selectors import events_after
from lobby.services import player_for_user
from lobby.socketcaps import CLOSE_REPLACED, CLOSE_TOO_MANY, scope_ip, socket_caps


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/v1/events?after=<seq>`: the player's event stream (design.md §5).

    On connect: authenticate, join the player's group, then replay every event after `after`
    from the database, then forward pushes. A push can overlap the replay; events carry `seq`,
    and nothing at or below the last one sent goes out twice. The process's socket monitor
    (lobby.realtime) repairs a lost push without waiting for a later one, and keeps the
    player's presence; the socket itself runs no timer.
    """

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Refused during the handshake: the client sees HTTP 403 and no socket opens.
            await self.close()
            return
        try:
            self.last_seq = int(
                parse_qs(self.scope["query_string"].decode()).get("after", ["0"])[0]
            )
        except ValueError:
            self.last_seq = 0
        self.player = await database_sync_to_async(player_for_user)(user)
        # Capped before any Redis or replay work (lobby/socketcaps.py, close codes in docs/api.md).
        admitted, replaced = socket_caps.admit(
            self, player_id=self.player.pk, ip=scope_ip(self.scope)
        )
        if not admitted:
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY)
            return
        for old in replaced:
            socket_caps.release(old)
            await old.close(code=CLOSE_REPLACED)
        self.group = player_group(self.player.pk)
        # Replays and pushes go out one at a time, so seqs leave in order.
        self.sending = asyncio.Lock()
        # Join before reading: an event committed meanwhile is in the replay or in a push.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Watched before the replay: a push lost from here on is noticed (and waits its turn).
        self.monitor = socket_monitor()
        self.monitor.add(self)
        async with self.sending:
            await self._replay()

    async def dispatch(self, message):
        # channels closes stale database connections before every handler, through the one
        # sync thread: a thread hop per push that queues behind every database call of the
        # process. A push touches no database (its replay goes through database_sync_to_async,
        # which closes them itself), so it skips that.
        if message["type"] == PUSH_TYPE:
            await self.player_event(message)
        else:
            await super().dispatch(message)

    async def deliver(self, messages) -> int:
        """Send stored events (consecutive, in seq order) not sent yet; how many went out."""
        async with self.sending:
            sent = 0
            for message in messages:
                sent += await self._send_event(message)
            return sent

    async def _replay(self) -> int:
        sent = 0
        while True:
            events = await database_sync_to_async(events_after)(
                player=self.player, after=self.last_seq
            )
            for event in events:
                sent += await self._send_event(event.as_message())
            if not events:
                return sent

    async def disconnect(self, code):
        socket_caps.release(self)
        if hasattr(self, "monitor"):
            self.monitor.remove(self)
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # Clients only listen. Whatever they send (a library's "ping" text, a binary frame) is
        # ignored before any JSON decoding, so it can neither break nor close the socket.
        return

    async def player_event(self, event):
        message = event["message"]
        seq = message.get("seq")
        if hasattr(self, "monitor"):
            self.monitor.push_handled(event.get("log"))
        async with self.sending:
            if seq is not None and seq > self.last_seq + 1:
                # A push was lost on the way (channel layers deliver at most once): the database
                # has it, and the replay sends everything up to and including this one, in order.
                await self._replay()
            await self._send_event(message)

    async def _send_event(self, message) -> int:
        seq = message.get("seq")
        if seq is not None:
            if seq <= self.last_seq:
                return 0
            self.last_seq = seq
        await self.send_json(message)
        return 1
