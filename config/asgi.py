"""ASGI entry point: HTTP goes to Django, WebSockets to Channels (design.md §5)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from config.admission import gated  # noqa: E402
from lobby.auth import PlayerAuthMiddlewareStack  # noqa: E402
from lobby.fastpath import LeanHttp  # noqa: E402
from lobby.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # A crowd queues in the event loop, not in threads fighting over the database pool.
        # The paths game clients poll are answered before the gate when they can be
        # (lobby/fastpath.py: async, no thread held while waiting, like the exempt async views).
        "http": LeanHttp(
            gated(
                django_asgi_app,
                limit=settings.ADMISSION_LIMIT,
                queue_timeout=settings.REQUEST_QUEUE_TIMEOUT,
                exempt_prefixes=["/" + settings.STATIC_URL.lstrip("/")],
            )
        ),
        "websocket": PlayerAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
