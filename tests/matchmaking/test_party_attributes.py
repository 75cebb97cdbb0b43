"""A party member's own attributes (PUT .../parties/{id}/attributes) and the party's ticket made
of every member's: merged by rules.merge_party_attributes, refused as a solo ticket is
(400 invalid with fields and problems), rated numbers from each member's own rating."""

import pytest
from django.core.cache import cache

from lobby.models import Lobby
from matchmaking import services
from matchmaking.models import Profile, Ticket
from ratings import skill
from ratings.models import Leaderboard, Rating
from tests.lobby.conftest import api_client_for, events_of  # noqa: F401 - fixture
from tests.lobby.factories import PlayerFactory

pytestmark = pytest.mark.django_db

TICKETS = "/api/v1/matchmaking/tickets"
SIZE_2X2 = {
    "type": "player_count",
    "attributes": {"team_count": 2, "min_team_size": 2, "max_team_size": 2},
}
SQUAD = {
    "initial": {
        "size": SIZE_2X2,
        "mode": {"type": "string_equality"},
        "maps": {"type": "intersection", "attributes": {"overlap": 1}},
        "beacons": {"type": "latencies", "attributes": {"max_latency": 150, "difference": 100}},
    }
}
RATED = {
    "initial": {
        "size": SIZE_2X2,
        "skill": {
            "type": "number_difference",
            "rating": "ranked",
            "attributes": {"max_difference": 2000},
        },
    }
}
LEADER_SAYS = {"mode": "ctf", "maps": ["dust", "harbor"], "beacons": {"eu-west": 20, "us-east": 40}}


@pytest.fixture(autouse=True)
def _no_relay_tasks(django_capture_on_commit_callbacks):
    # Matches start lobbies, which queue relay tasks after commit; none run in these tests.
    with django_capture_on_commit_callbacks(execute=False):
        yield
    cache.clear()


@pytest.fixture
def squad():
    return Profile.objects.create(name="squad", rules=SQUAD, mode="ctf")


@pytest.fixture
def rated():
    return Profile.objects.create(name="ranked", rules=RATED, mode="tdm")


def _party(*extra_members):
    leader = PlayerFactory(display_name="Leader")
    party = services.party_create(player=leader, ip="203.0.113.5")
    for n, member in enumerate(extra_members):
        services.party_join(code=party.code, player=member, ip=f"203.0.113.{10 + n}")
    return leader, party


def _set(member, party, attributes):
    return api_client_for(member).put(
        f"/api/v1/matchmaking/parties/{party.pk}/attributes",
        {"attributes": attributes},
        format="json",
    )


def _queue(player, profile, attributes):
    return api_client_for(player).post(
        TICKETS, {"profile": profile.name, "attributes": attributes}, format="json"
    )


def test_members_in_different_places_play_where_all_can_at_the_worst_latency(squad):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    assert _set(friend, party, {"beacons": {"us-east": 90, "ap-south": 10}}).status_code == 200

    response = _queue(leader, squad, LEADER_SAYS)

    assert response.status_code == 201, response.json()
    assert response.json()["attributes"]["beacons"] == {"us-east": 90}
    # Two solos who would rather play in eu-west, where the leader is too; the friend is not.
    near, nearer = PlayerFactory(), PlayerFactory()
    for solo, ms in (
        (near, {"eu-west": 10, "us-east": 60}),
        (nearer, {"eu-west": 5, "us-east": 70}),
    ):
        assert _queue(solo, squad, {**LEADER_SAYS, "beacons": ms}).status_code == 201
    services.matchmaking_pass(profile=squad)
    lobby = Lobby.objects.get()
    # The match is in the one region every member measured, hosted by whoever is fastest there
    # (the party counts at its friend's 90 ms, not the leader's 40).
    assert (lobby.region, lobby.host_id) == ("us-east", near.pk)


def test_members_who_disagree_on_a_string_cannot_queue(squad):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    _set(friend, party, {"mode": "koth"})

    response = _queue(leader, squad, LEADER_SAYS)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["problems"]["attributes"]["mode"] == {
        "code": "party_disagree",
        "values": ["ctf", "koth"],
    }
    assert error["fields"]["attributes"]["mode"] == "party members disagree: 'ctf' vs 'koth'"
    assert not Ticket.objects.exists()


def test_members_with_too_little_in_common_cannot_queue(squad):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    _set(friend, party, {"maps": ["canyon"], "beacons": {"eu-west": 30}})

    response = _queue(leader, squad, LEADER_SAYS)

    assert response.status_code == 400
    assert response.json()["error"]["problems"]["attributes"] == {
        "maps": {"code": "party_too_few_in_common", "in_common": 0, "need": 1}
    }


def test_merged_values_keep_what_every_member_accepts(squad):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    _set(friend, party, {"maps": ["harbor", "canyon"], "rank": 3})  # rank: for another queue

    ticket = _queue(leader, squad, LEADER_SAYS).json()

    assert ticket["attributes"] == {**LEADER_SAYS, "maps": ["harbor"]}


def test_a_member_who_gave_nothing_adopts_the_leaders_values(squad):
    friend = PlayerFactory(display_name="Friend")
    leader, _ = _party(friend)

    ticket = _queue(leader, squad, LEADER_SAYS).json()

    assert ticket["attributes"] == LEADER_SAYS
    assert ticket["players"] == [leader.pk, friend.pk]


def test_a_members_bad_value_is_refused_naming_the_member(squad):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    _set(friend, party, {"beacons": {"eu-west": -1}})

    error = _queue(leader, squad, LEADER_SAYS).json()["error"]

    assert error["player_id"] == friend.pk
    assert error["problems"]["attributes"] == {
        "beacons": {"code": "bad_latency", "region": "eu-west"}
    }
    assert error["message"].startswith("Friend's own attributes.beacons")


def test_a_member_cannot_set_the_number_a_queue_rates(rated):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    _set(friend, party, {"skill": 3000})

    response = _queue(leader, rated, {})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["problems"]["attributes"] == {
        "skill": {"code": "set_by_server", "leaderboard": "ranked"}
    }
    assert error["player_id"] == friend.pk
    assert not Ticket.objects.exists()


def test_a_rated_partys_number_is_its_members_mean_mu_whatever_they_set(rated):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    board = Leaderboard.objects.create(name="ranked")
    Rating.objects.create(leaderboard=board, player=leader, mu=1700, sigma=100, games=5)
    Rating.objects.create(leaderboard=board, player=friend, mu=1250, sigma=300, games=5)
    # A value for another queue: ignored here, and the merge path runs for the rated number.
    _set(friend, party, {"mode": "ctf"})

    ticket, _ = services.ticket_create(
        player=leader, profile_name="ranked", attributes={}, ip="203.0.113.5"
    )

    expected = skill.party_skill([skill.Skill(1700, 100), skill.Skill(1250, 300)])
    assert ticket.attributes["skill"] == pytest.approx(1475) == expected.mu
    assert ticket.attributes["$rated"]["skill"] == {
        "leaderboard": "ranked",
        "mu": expected.mu,
        "sigma": expected.sigma,
    }


def test_a_rated_party_with_own_attributes_merges_each_members_rating():
    rules = {"initial": {**RATED["initial"], "mode": {"type": "string_equality"}}}
    Profile.objects.create(name="ranked-modes", rules=rules)
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    board = Leaderboard.objects.create(name="ranked")
    Rating.objects.create(leaderboard=board, player=friend, mu=1100, sigma=200, games=5)
    _set(friend, party, {"mode": "ctf"})

    ticket, _ = services.ticket_create(
        player=leader, profile_name="ranked-modes", attributes={"mode": "ctf"}, ip="203.0.113.5"
    )

    mu = (skill.MU + 1100) / 2  # the leader is new
    assert ticket.attributes["skill"] == mu == ticket.attributes["$rated"]["skill"]["mu"]
    assert ticket.attributes["mode"] == "ctf"


def test_only_members_may_set_attributes(squad):
    _, party = _party()
    stranger = PlayerFactory()

    response = _set(stranger, party, {"mode": "ctf"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "party_not_found"


def test_attributes_must_be_an_object_within_the_limits(squad):
    leader, party = _party()
    not_object = _set(leader, party, ["ctf"])
    too_long = _set(leader, party, {"mode": "x" * 201})
    a_boolean = _set(leader, party, {"ranked": True})
    too_many = _set(leader, party, {f"a{n}": 1 for n in range(65)})

    assert [r.status_code for r in (not_object, too_long, a_boolean, too_many)] == [400] * 4
    assert not_object.json()["error"]["fields"]["attributes"] == ["Must be a JSON object."]


def test_attributes_cannot_change_while_the_party_searches(squad):
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)
    _queue(leader, squad, LEADER_SAYS)

    response = _set(friend, party, {"mode": "koth"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "party_searching"
    assert party.members.get(player=friend).attributes is None


def test_every_member_hears_of_the_change_and_the_party_shows_it(squad, events_of):  # noqa: F811
    friend = PlayerFactory(display_name="Friend")
    leader, party = _party(friend)

    shown = _set(friend, party, {"beacons": {"us-east": 90}}).json()

    expected = [
        {"player_id": leader.pk, "attributes": None},
        {"player_id": friend.pk, "attributes": {"beacons": {"us-east": 90}}},
    ]
    assert shown["member_attributes"] == expected
    for member in (leader, friend):
        updates = [data for kind, data in events_of(member) if kind == "party.updated"]
        assert updates[-1] == shown
    read = api_client_for(leader).get(f"/api/v1/matchmaking/parties/{party.pk}").json()
    assert read == shown

    cleared = _set(friend, party, None).json()
    assert cleared["member_attributes"][1]["attributes"] is None


def test_joins_and_leaves_are_party_updated_events_for_everyone_who_was_in_it(events_of):  # noqa: F811
    def members_seen(player):
        return [data["members"] for kind, data in events_of(player) if kind == "party.updated"]

    first, second = PlayerFactory(), PlayerFactory()
    leader, party = _party(first)
    services.party_join(code=party.code, player=second, ip="203.0.113.40")
    services.party_leave(party_id=party.pk, player=first)
    services.party_leave(party_id=party.pk, player=leader)  # the leader leaving disbands it

    assert members_seen(leader) == [
        [leader.pk, first.pk],
        [leader.pk, first.pk, second.pk],
        [leader.pk, second.pk],
        [],
    ]
    assert members_seen(first) == [
        [leader.pk, first.pk],
        [leader.pk, first.pk, second.pk],
        [leader.pk, second.pk],  # the leaver hears it is out; then nothing more
    ]
    assert members_seen(second) == [[leader.pk, first.pk, second.pk], [leader.pk, second.pk], []]
