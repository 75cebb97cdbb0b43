from django.urls import path

from relays import views

app_name = "relays"

urlpatterns = [
    path("hooks/relays/<str:key>", views.relay_webhook, name="webhook"),
]
