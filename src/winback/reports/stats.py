"""The lift of a journey against its holdout group, with a 95 % confidence interval, and a
sentence a marketer can read. Pure functions: counts and amounts in, numbers out.

- A rate (the share of contacts reactivated): the difference of two proportions with
  Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation for the difference
  between independent proportions", method 10), which behaves at small counts and at
  rates near 0 or 1 where the textbook Wald interval does not.
- An amount per contact (revenue per enrolled contact): the difference of two means with
  Welch's interval (unequal variances, Welch–Satterthwaite degrees of freedom): revenue
  is skewed and the two groups differ in size, which rules out the pooled t interval.

A difference is ``significant`` when its interval leaves out zero. When it does not, the
sentence says about how many more contacts (in the same treated/holdout split) would make
the observed difference significant at 80 % power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
Z80 = 0.8416212335729143  # its 80th percentile: 80 % power


@dataclass(frozen=True)
class Lift:
    """Treated against holdout on one metric. ``relative`` is the difference over the
    holdout's value (None when the holdout's is zero)."""

    treated: float | None
    holdout: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    relative: float | None
    significant: bool
    more_contacts_needed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


NO_LIFT = Lift(None, None, None, None, None, None, False)


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of one proportion."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    denominator = 1 + z * z / total
    return (centre - spread) / denominator, (centre + spread) / denominator


def _more_contacts(
    difference: float, variance1: float, variance0: float, n1: int, n0: int
) -> int | None:
    """Contacts to add (in the same treated/holdout split) for ``difference`` to be
    significant at 80 % power, given each group's variance per contact; None when there is
    no difference to detect."""
    if difference == 0 or n1 == 0 or n0 == 0:
        return None
    share = n1 / (n1 + n0)
    needed = (Z95 + Z80) ** 2 * (variance1 / share + variance0 / (1 - share)) / difference**2
    return max(0, math.ceil(needed) - (n1 + n0))


def proportion_lift(treated: int, n_treated: int, holdout: int, n_holdout: int) -> Lift:
    """The difference of two proportions (treated − holdout) with Newcombe's interval."""
    if n_treated == 0 or n_holdout == 0:
        rate = treated / n_treated if n_treated else None
        return Lift(rate, holdout / n_holdout if n_holdout else None, None, None, None, None, False)
    p1, p0 = treated / n_treated, holdout / n_holdout
    l1, u1 = wilson(treated, n_treated)
    l0, u0 = wilson(holdout, n_holdout)
    difference = p1 - p0
    low = difference - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    significant = low > 0 or high < 0
    return Lift(
        treated=p1,
        holdout=p0,
        difference=difference,
        ci_low=low,
        ci_high=high,
        relative=difference / p0 if p0 else None,
        significant=significant,
        more_contacts_needed=None
        if significant
        else _more_contacts(difference, p1 * (1 - p1), p0 * (1 - p0), n_treated, n_holdout),
    )


def mean_lift(treated: list[float], holdout: list[float]) -> Lift:
    """The difference of two means (treated − holdout) with Welch's interval."""
    n1, n0 = len(treated), len(holdout)
    if n1 < 2 or n0 < 2:
        m1 = sum(treated) / n1 if n1 else None
        m0 = sum(holdout) / n0 if n0 else None
        return Lift(m1, m0, None, None, None, None, False)
    m1, m0 = sum(treated) / n1, sum(holdout) / n0
    v1 = sum((x - m1) ** 2 for x in treated) / (n1 - 1)
    v0 = sum((x - m0) ** 2 for x in holdout) / (n0 - 1)
    se2 = v1 / n1 + v0 / n0
    difference = m1 - m0
    if se2 == 0:
        low = high = difference
        more = None
    else:
        dof = se2**2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
        from scipy import stats  # slow to load: only when an interval is computed

        half = float(stats.t.ppf(0.975, dof)) * math.sqrt(se2)
        low, high = difference - half, difference + half
        more = _more_contacts(difference, v1, v0, n1, n0)
    significant = low > 0 or high < 0
    return Lift(
        treated=m1,
        holdout=m0,
        difference=difference,
        ci_low=low,
        ci_high=high,
        relative=difference / m0 if m0 else None,
        significant=significant,
        more_contacts_needed=None if significant else more,
    )


_WORDS = {
    "en": {
        "none": "no holdout group to compare with: the lift cannot be measured",
        "points": "points",
        "per_contact": "per contact",
        "works": "the journey works",
        "worse": "the journey does worse than sending nothing",
        "more": "not significant yet: about {n} more contacts needed",
        "flat": "not significant: no difference to measure so far",
        "thousands": ",",
    },
    "fr": {
        "none": "pas de groupe témoin : l'effet ne peut pas être mesuré",
        "points": "points",
        "per_contact": "par contact",
        "works": "le parcours fonctionne",
        "worse": "le parcours fait moins bien que ne rien envoyer",
        "more": "pas encore significatif : il faudrait environ {n} contacts de plus",
        "flat": "pas significatif : aucune différence mesurable pour l'instant",
        "thousands": "\u202f",
    },
}


def _number(value: float, places: int, language: str, sign: bool = False) -> str:
    text = f"{value:+.{places}f}" if sign else f"{value:.{places}f}"
    return text.replace(".", ",") if language == "fr" else text


def rate_sentence(lift: Lift, language: str = "en") -> str:
    """What a reactivation-rate lift means, in one sentence: points are percentage points."""
    words = _WORDS.get(language, _WORDS["en"])
    if lift.difference is None or lift.ci_low is None or lift.ci_high is None:
        return words["none"]
    points = (
        f"{_number(lift.difference * 100, 1, language, sign=True)} {words['points']} "
        f"[{_number(lift.ci_low * 100, 1, language)}; {_number(lift.ci_high * 100, 1, language)}]"
    )
    return _verdict(points, lift, words)


def amount_sentence(lift: Lift, currency: str, language: str = "en") -> str:
    """What a revenue-per-contact lift means, in one sentence."""
    words = _WORDS.get(language, _WORDS["en"])
    if lift.difference is None or lift.ci_low is None or lift.ci_high is None:
        return words["none"]
    amount = (
        f"{_number(lift.difference, 2, language, sign=True)} {currency} {words['per_contact']} "
        f"[{_number(lift.ci_low, 2, language)}; {_number(lift.ci_high, 2, language)}]"
    )
    return _verdict(amount, lift, words)


def _verdict(measure: str, lift: Lift, words: dict[str, str]) -> str:
    if lift.significant and lift.difference is not None and lift.difference > 0:
        return f"{measure}: {words['works']}"
    if lift.significant:
        return f"{measure}: {words['worse']}"
    if lift.more_contacts_needed:
        grouped = f"{lift.more_contacts_needed:,}".replace(",", words["thousands"])
        return f"{measure}: {words['more'].format(n=grouped)}"
    return f"{measure}: {words['flat']}"
