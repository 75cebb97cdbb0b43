from django.urls import path

from matchmaking import apis

app_name = "matchmaking"

urlpatterns = [
    path("profiles", apis.ProfileListApi.as_view(), name="profile-list"),
    path("tickets", apis.TicketCreateApi.as_view(), name="ticket-create"),
    path("tickets/<uuid:ticket_id>", apis.TicketDetailApi.as_view(), name="ticket-detail"),
    path("parties", apis.PartyCreateApi.as_view(), name="party-create"),
    path("parties/join", apis.PartyJoinApi.as_view(), name="party-join"),
    path("parties/<uuid:party_id>", apis.PartyDetailApi.as_view(), name="party-detail"),
    path("parties/<uuid:party_id>/leave", apis.PartyLeaveApi.as_view(), name="party-leave"),
    path(
        "parties/<uuid:party_id>/attributes",
        apis.PartyAttributesApi.as_view(),
        name="party-attributes",
    ),
]
