"""Issue 15's audit log covers every operator action in the admin: "Reconcile now" (relays) and
the ratings desk's adjust, reset and resolve land in it with who, what and why."""

import pytest

from moderation.models import AuditEntry
from ratings.models import MatchResult, Rating
from tests.ratings import conftest as ratings
from tests.ratings.test_admin import _disputed, _inline

# The ratings tests' fixtures, re-exported for pytest.
players = ratings.players
matched_lobby = ratings.matched_lobby

pytestmark = pytest.mark.django_db


def _entries():
    return list(
        AuditEntry.objects.order_by("pk").values_list(
            "action", "actor_name", "target_type", "reason"
        )
    )


def test_reconcile_now_is_recorded_in_the_audit_log(admin_client, monkeypatch):
    queued = []
    monkeypatch.setattr("relays.tasks.reconcile.delay", lambda: queued.append(True))
    assert admin_client.get("/admin/relays/relaysession/reconcile/").status_code == 405
    assert not AuditEntry.objects.exists()  # a refused GET did nothing, records nothing

    assert admin_client.post("/admin/relays/relaysession/reconcile/").status_code == 302

    assert queued == [True]
    assert _entries() == [("relay.reconcile", "admin", "", "")]


def test_resolving_a_dispute_is_recorded_with_its_note(players, matched_lobby, admin_client):
    result, _, _ = _disputed(players, matched_lobby)
    url = f"/admin/ratings/matchresult/{result.pk}/change/"
    refused = admin_client.post(
        url, {"decision": "0", "note": "", **_inline("reports", result.reports.all())}
    )
    assert refused.status_code == 200 and not AuditEntry.objects.exists()

    admin_client.post(
        url, {"decision": "void", "note": "both lied", **_inline("reports", result.reports.all())}
    )

    assert MatchResult.objects.get(pk=result.pk).state == "void"
    assert _entries() == [("result.resolve", "admin", "ratings.matchresult", "both lied")]
    assert AuditEntry.objects.get().details == {"state": "void"}
    # A second resolve is refused by the service (409): the log does not claim it happened.
    admin_client.post(
        url, {"decision": "void", "note": "again", **_inline("reports", result.reports.all())}
    )
    assert AuditEntry.objects.count() == 1


def test_adjusting_and_resetting_a_rating_are_recorded(players, matched_lobby, admin_client):
    result, a, _ = _disputed(players, matched_lobby)
    admin_client.post(
        f"/admin/ratings/matchresult/{result.pk}/change/",
        {"decision": "0", "note": "ok", **_inline("reports", result.reports.all())},
    )
    rating = Rating.objects.get(player=a)
    url = f"/admin/ratings/rating/{rating.pk}/change/"

    for form in (
        {"new_mu": "1700", "note": "known pro"},
        {"new_mu": "1e9", "note": "typo"},
        {"reset": "on", "note": "smurf"},
    ):
        admin_client.post(url, {**form, **_inline("history", rating.history.all())})

    assert _entries()[1:] == [
        ("rating.adjust", "admin", "ratings.rating", "known pro"),
        # the out-of-range 1e9 was refused by the service: not in the log
        ("rating.reset", "admin", "ratings.rating", "smurf"),
    ]
    adjust = AuditEntry.objects.get(action="rating.adjust")
    assert adjust.target_id == str(rating.pk)
    assert adjust.details == {"mu": 1700.0, "sigma": pytest.approx(rating.sigma)}
