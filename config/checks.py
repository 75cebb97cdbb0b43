"""`manage.py check --deploy` additions: what this service needs in production beyond Django's."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def metrics_token(app_configs, **kwargs):
    if settings.METRICS_TOKEN or not settings.METRICS_REQUIRE_TOKEN:
        return []
    return [
        Warning(
            "METRICS_TOKEN is not set: /metrics refuses every scrape (403) while DEBUG is off.",
            hint="Set METRICS_TOKEN (or METRICS_TOKEN_FILE) and give Prometheus the same token "
            "as a bearer token.",
            id="relaylobby.W001",
        )
    ]
