"""Site-wide bits that belong to no app: the favicon."""

from django.http import HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

# Two players linked through a relay: small enough to serve from memory, no static file needed.
FAVICON_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#1f5f8b"/>
<path d="M8 22 L16 10 L24 22" stroke="#ffffff" stroke-width="2.5" fill="none"
 stroke-linecap="round" stroke-linejoin="round"/>
<circle cx="8" cy="22" r="3.5" fill="#ffd166"/><circle cx="24" cy="22" r="3.5" fill="#ffd166"/>
<circle cx="16" cy="10" r="3.5" fill="#ffffff"/>
</svg>"""


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request):
    return HttpResponse(FAVICON_SVG, content_type="image/svg+xml")
