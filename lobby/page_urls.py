"""The browser pages, mounted at the site root (config/urls.py)."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from lobby import pages
from matchmaking import pages as matchmaking_pages

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
]
