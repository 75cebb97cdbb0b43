"""The rating model: OpenSkill's Plackett-Luce on a 1500-centred scale (no Django).

OpenSkill's defaults are mu 25, sigma 25/3, beta 25/6, tau 25/300. Everything here is those
numbers times 60, so a new player is mu 1500, sigma 500 (the scale players know from Elo), and
the displayed rating (`ordinal` = mu - 3 sigma) starts at 0 and rises as the server grows sure.
Scaling every parameter together leaves every prediction unchanged.

Plackett-Luce is kept (the issue's default): it takes any number of teams of any size and ties
(equal ranks), and it is the model the predicted match quality is read from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openskill.models import PlackettLuce

# OpenSkill's defaults times 60, written out: 25/3 * 60 in floating point is 500.00000000000006.
MU = 1500.0  # 25 * 60
SIGMA = 500.0  # 25/3 * 60
BETA = 250.0  # 25/6 * 60
TAU = 5.0  # 25/300 * 60: keeps sigma from freezing, so a player's rating can still move

MODEL = PlackettLuce(mu=MU, sigma=SIGMA, beta=BETA, tau=TAU)


@dataclass(frozen=True, slots=True)
class Skill:
    mu: float
    sigma: float

    @property
    def ordinal(self) -> float:
        return ordinal(self.mu, self.sigma)


NEW = Skill(MU, SIGMA)


def ordinal(mu: float, sigma: float) -> float:
    """The displayed rating: a conservative estimate (this good or better, ~99.7 % sure)."""
    return mu - 3.0 * sigma


def rate(teams: Sequence[Sequence[Skill]], ranks: Sequence[int]) -> list[list[Skill]]:
    """New skills after a match; ``ranks`` per team, 1 = first, equal ranks tie."""
    rated = MODEL.rate(
        [[MODEL.rating(mu=s.mu, sigma=s.sigma) for s in team] for team in teams],
        ranks=[float(r) for r in ranks],
    )
    return [[Skill(r.mu, r.sigma) for r in team] for team in rated]


def quality(teams: Sequence[Sequence[Skill]]) -> float:
    """Predicted match quality: the model's probability that the teams draw (0..1).

    Highest for teams of equal, well-known skill; lower the further apart the teams are and the
    less sure the model is of its players.
    """
    if len(teams) < 2:
        return 1.0
    return float(
        MODEL.predict_draw([[MODEL.rating(mu=s.mu, sigma=s.sigma) for s in t] for t in teams])
    )


def party_skill(members: Sequence[Skill]) -> Skill:
    """One number for a party that queues together: the mean mu, and the root-mean-square sigma
    (the uncertainty of a typical member, not the mean's smaller one: the matcher pairs groups
    whose members play, not an average that never does)."""
    n = len(members)
    mu = sum(s.mu for s in members) / n
    sigma = (sum(s.sigma * s.sigma for s in members) / n) ** 0.5
    return Skill(mu, sigma)
