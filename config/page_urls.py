"""The browser pages, mounted at the site root (config/urls.py).

Page routing lives here, above the apps, so that no app imports another against the direction
matchmaking -> ratings -> lobby -> relays (tests/test_layering.py): the queue page is
matchmaking's, the leaderboard pages ratings', the lobby pages lobby's, and only config knows them
all.
"""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from config import pages as site_pages
from lobby import pages
from matchmaking import pages as matchmaking_pages
from ratings import pages as ratings_pages

app_name = "pages"

urlpatterns = [
    path("", pages.entry, name="entry"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="lobby/login.html",
            redirect_authenticated_user=True,
            next_page=reverse_lazy("pages:browser"),
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="pages:entry"), name="logout"),
    path("lobbies/", pages.browser, name="browser"),
    path("lobbies/<uuid:lobby_id>/", pages.room, name="room"),
    path("queue/", matchmaking_pages.queue, name="queue"),
    path("leaderboards/", ratings_pages.leaderboards, name="leaderboards"),
    path("leaderboards/<slug:name>/", ratings_pages.leaderboard, name="leaderboard"),
    # Browsers ask for /favicon.ico on their own; without it every page logged a 404 warning.
    path("favicon.ico", site_pages.favicon, name="favicon"),
    path("favicon.svg", site_pages.favicon, name="favicon-svg"),
]
