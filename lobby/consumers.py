from channels.generic.websocket import AsyncJsonWebsocketConsumer

from lobby.realtime import player_group


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """One socket per player connection at /ws/v1/events: authenticate, then forward pushes."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Refused during the handshake: the client sees HTTP 403 and no socket opens.
            await self.close()
            return
        self.group = player_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # Clients only listen; anything they send is ignored rather than treated as an error, so
        # a client library's keepalive text frames do no harm.
        return

    async def player_event(self, event):
        await self.send_json(event["message"])
