"""ASGI entry point: HTTP goes to Django, WebSockets to Channels (design.md §5)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from lobby.auth import PlayerAuthMiddlewareStack  # noqa: E402
from lobby.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": PlayerAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
