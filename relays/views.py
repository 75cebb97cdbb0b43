from django.core.cache import cache
from django.http import HttpResponse, HttpResponseNotFound
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from relays import tasks
from relays.models import RelaySession


@csrf_exempt
@require_POST
def relay_webhook(request, key):
    """Edgegap's "session is ready" call. A hint only: its body is never read or trusted.

    The URL's key is unguessable and unique per session; the call just triggers a poll now, which
    re-reads the session with GET. At most one poll per second per session, whoever calls.
    """
    session = RelaySession.objects.filter(webhook_key=key).only("pk", "status").first()
    if session is None:
        return HttpResponseNotFound()
    if session.status == RelaySession.Status.WAITING and cache.add(
        f"relays:webhook:{session.pk}", 1, timeout=1
    ):
        tasks.session_poll.delay(str(session.pk))
    return HttpResponse(status=204)
