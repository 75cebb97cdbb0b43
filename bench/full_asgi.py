"""The project's HTTP application without the lean path (lobby/fastpath.py): every request
through the admission gate and Django, as before issue 11. For comparison in bench/polling.py."""

from django.conf import settings

from config.admission import gated
from config.asgi import django_asgi_app

app = gated(
    django_asgi_app,
    limit=settings.ADMISSION_LIMIT,
    queue_timeout=settings.REQUEST_QUEUE_TIMEOUT,
    exempt_prefixes=["/" + settings.STATIC_URL.lstrip("/")],
)
