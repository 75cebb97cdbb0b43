"""The rating model: OpenSkill's Plackett-Luce on a 1500-centred scale (no Django).

OpenSkill's defaults are mu 25, sigma 25/3, beta 25/6, tau 25/300. Everything here is those
numbers times 60, so a new player is mu 1500, sigma 500 (the scale players know from Elo), and
the displayed rating (`ordinal` = mu - 3 sigma) starts at 0 and rises as the server grows sure.
Scaling every parameter together leaves every prediction unchanged.

Plackett-Luce is kept (the issue's default): it takes any number of teams of any size and ties
(equal ranks). Predicted match quality (`match_quality`) reads the same Gaussian skills with the
same performance spread beta.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from openskill.models import PlackettLuce

# OpenSkill's defaults times 60, written out: 25/3 * 60 in floating point is 500.00000000000006.
MU = 1500.0  # 25 * 60
SIGMA = 500.0  # 25/3 * 60
BETA = 250.0  # 25/6 * 60
BETA_SQ = BETA * BETA
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


def match_quality(teams: Sequence[tuple[float, float, int]]) -> float:
    """Predicted match quality from each team's (sum of mu, sum of sigma squared, players).

    TrueSkill's quality, on this model's performance spread ``BETA``: the probability that the
    teams draw, relative to the probability that two equal sides of certain players draw (in the
    limit of a small draw margin). 1 for equal teams of certain players; lower the further apart
    the teams' summed mu and the less sure the model is of its players. Unlike Plackett-Luce's own
    ``predict_draw`` (at most 1/2 for two teams, less for more), it reads on the same 0..1 scale
    whatever the number and size of the teams, which is what lets a queue, the matcher's
    explanations and an operator compare matches. For two teams of n players in all, with
    c^2 = n beta^2 + every player's sigma^2: ``sqrt(n beta^2 / c^2) * exp(-(mu_A - mu_B)^2 /
    (2 c^2))``; with more teams, the mean over pairs of teams. One definition, used by the matcher
    (its hot path passes sums), the lobby's metadata and the result.
    """
    if len(teams) == 2:  # the common case, once per rated match: no loop over pairs
        return _pair_quality(teams[0], teams[1])
    total = 0.0
    pairs = 0
    for a in range(len(teams)):
        for b in range(a + 1, len(teams)):
            total += _pair_quality(teams[a], teams[b])
            pairs += 1
    return total / pairs if pairs else 1.0


def _pair_quality(a: tuple[float, float, int], b: tuple[float, float, int]) -> float:
    mu_a, var_a, n_a = a
    mu_b, var_b, n_b = b
    spread = (n_a + n_b) * BETA_SQ
    c_sq = spread + var_a + var_b
    diff = mu_a - mu_b
    return math.sqrt(spread / c_sq) * math.exp(-diff * diff / (2.0 * c_sq))


def quality(teams: Sequence[Sequence[Skill]]) -> float:
    """`match_quality` of teams of players' skills."""
    return match_quality(
        [(sum(s.mu for s in t), sum(s.sigma * s.sigma for s in t), len(t)) for t in teams]
    )


def party_skill(members: Sequence[Skill]) -> Skill:
    """One number for a party that queues together: the mean mu, and the root-mean-square sigma
    (the uncertainty of a typical member, not the mean's smaller one: the matcher pairs groups
    whose members play, not an average that never does)."""
    n = len(members)
    mu = sum(s.mu for s in members) / n
    sigma = (sum(s.sigma * s.sigma for s in members) / n) ** 0.5
    return Skill(mu, sigma)
