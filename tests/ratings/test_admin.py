"""Operators see disputes and settle them, and adjust or reset ratings, in the admin."""

import pytest

from ratings.models import MatchResult, Rating
from tests.ratings.conftest import placements

pytestmark = pytest.mark.django_db


def _inline(prefix, rows):
    """A read-only inline as the change page posts it: its management form and row ids."""
    pks = list(rows.order_by("-created_at", "-pk").values_list("pk", flat=True))
    return {
        f"{prefix}-TOTAL_FORMS": str(len(pks)),
        f"{prefix}-INITIAL_FORMS": str(len(pks)),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        **{f"{prefix}-{n}-id": str(pk) for n, pk in enumerate(pks)},
    }


def _disputed(players, matched_lobby):
    from ratings import services

    a, b = players(2)
    lobby = matched_lobby([[a], [b]])
    services.result_report(lobby_id=lobby.pk, player=a, teams=placements([a], [b]))
    services.result_report(lobby_id=lobby.pk, player=b, teams=placements([b], [a]))
    return MatchResult.objects.get(lobby=lobby), a, b


def test_disputes_are_listed_and_resolved_by_one_of_the_reports(
    players, matched_lobby, admin_client
):
    result, a, b = _disputed(players, matched_lobby)
    listing = admin_client.get("/admin/ratings/matchresult/?state__exact=disputed")
    assert listing.status_code == 200 and result.lobby.join_code in listing.content.decode()
    page = admin_client.get(f"/admin/ratings/matchresult/{result.pk}/change/")
    assert "as reported" in page.content.decode()
    url = f"/admin/ratings/matchresult/{result.pk}/change/"
    refused = admin_client.post(
        url, {"decision": "1", "note": "", **_inline("reports", result.reports.all())}
    )
    assert refused.status_code == 200 and "Say why" in refused.content.decode()
    assert Rating.objects.count() == 0
    done = admin_client.post(
        url,
        {
            "decision": "1",
            "note": "b's replay shows b winning",
            **_inline("reports", result.reports.all()),
        },
    )
    assert done.status_code == 302
    result.refresh_from_db()
    assert result.state == "confirmed" and result.placements == placements([b], [a])
    assert Rating.objects.get(player=b).mu > Rating.objects.get(player=a).mu


def test_an_operator_adjusts_a_rating_and_the_history_says_who(
    players, matched_lobby, admin_client, admin_user
):
    result, a, _ = _disputed(players, matched_lobby)
    admin_client.post(
        f"/admin/ratings/matchresult/{result.pk}/change/",
        {"decision": "0", "note": "ok", **_inline("reports", result.reports.all())},
    )
    rating = Rating.objects.get(player=a)
    url = f"/admin/ratings/rating/{rating.pk}/change/"
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url,
        {
            "new_mu": "1700",
            "new_sigma": "",
            "note": "known pro",
            **_inline("history", rating.history.all()),
        },
    )
    assert response.status_code == 302
    rating.refresh_from_db()
    assert rating.mu == 1700
    change = rating.history.first()
    assert (change.reason, change.actor, change.note) == ("adjust", admin_user, "known pro")
    admin_client.post(
        url, {"reset": "on", "note": "smurf account", **_inline("history", rating.history.all())}
    )
    rating.refresh_from_db()
    assert rating.mu == 1500 and rating.sigma == 500
