from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import errors, health, metrics, overview
from ratings.apis import PlayerMeApi

# The admin says what it runs: an operator with several tabs open knows which service is which.
admin.site.site_header = "Relay lobby operations"
admin.site.site_title = "Relay lobby admin"
admin.site.index_title = "Lobbies, queues and relay sessions"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/overview/", admin.site.admin_view(overview.overview), name="admin-overview"),
    path("admin/", admin.site.urls),
    # players/me with ratings: ratings sits above lobby, so the composed view is routed here.
    path("api/v1/players/me", PlayerMeApi.as_view(), name="player-me-ratings"),
    path("api/v1/", include("lobby.urls")),
    path("api/v1/", include("ratings.urls")),
    path("api/v1/matchmaking/", include("matchmaking.urls")),
    path("api/v1/", include("moderation.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Any other /api/ address (a typo, a malformed id) gets the API's JSON 404, DEBUG or not.
    re_path(r"^api/", errors.api_not_found),
    path("", include("config.page_urls")),
    path("", include("relays.urls")),
]

# API clients get errors in the API's JSON shape, pages get Django's.
handler404 = "config.errors.handler404"
handler500 = "config.errors.handler500"
