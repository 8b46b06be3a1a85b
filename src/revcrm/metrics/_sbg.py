"""Contractual retention projection: the shifted-beta-geometric (sBG) model.

Fader and Hardie, "How to Project Customer Retention", Journal of Interactive Marketing
21(1), 2007. Each customer churns at the end of any period with a constant probability
``theta``; ``theta`` varies across customers as Beta(alpha, beta). For a cohort:

* ``P(T = 1) = alpha / (alpha + beta)``;
  ``P(T = t) = (beta + t - 2) / (alpha + beta + t - 1) * P(T = t - 1)`` for ``t >= 2``
  (``T`` is the period in which a customer churns);
* survival ``S(0) = 1``, ``S(t) = S(t - 1) * (beta + t - 1) / (alpha + beta + t - 1)``;
* retention ``r_t = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1)``, which rises
  with tenure (the better customers are the ones that stay);
* ``E[T] = (alpha + beta - 1) / (alpha - 1)`` when ``alpha > 1`` and infinite otherwise.

:func:`fit_sbg` maximises the likelihood of a cohort's survival counts. This is a
statistical model, so it works in binary floats; only :meth:`SbgFit.projected_ltv`,
which turns the expected lifetime into money, goes back to Decimal.

The optimiser (pure Python, no SciPy): a damped Newton method on the log-parameters
``(ln alpha, ln beta)`` (which keeps both positive and makes the surface better scaled),
with the analytic gradient and Hessian of the log-likelihood. When the Hessian is not
negative definite it is shifted by a multiple of the identity (Levenberg-Marquardt),
every step is capped at 2 in log space and shortened by Armijo backtracking, so every
accepted step increases the likelihood. It runs from a grid of starting points spanning
four orders of magnitude and keeps the best strict local maximum; a start has converged
when the full Newton step is shorter than ``1e-10`` or the increase it predicts is below
the rounding noise of the log-likelihood. A maximum that runs off towards infinite
parameters (the
cohort's churn does not fall with tenure, so a constant-churn model explains it at least
as well) or that is not a strict local maximum is a :class:`~revcrm.errors.ValidationError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import attrs

from revcrm._money import Money
from revcrm.errors import ValidationError

__all__ = ["SbgFit", "fit_sbg"]

#: Starting values of alpha and beta (each pair of the grid is one start).
_STARTS: Final = (0.1, 1.0, 10.0, 100.0)
#: Log-parameters are confined to [-_BOUND, _BOUND]: e^30 is about 1e13.
_BOUND: Final = 30.0
#: A maximum beyond e^_RIDGE (about 1.6e7) in either parameter is a run-off to infinity.
_RIDGE: Final = math.log(1.6e7)
#: A start that reaches e^_RUNOFF (about 3e8) in either parameter stops there.
_RUNOFF: Final = _RIDGE + 3.0
_MAX_STEP: Final = 2.0
_STEP_TOL: Final = 1e-10
_NOISE: Final = 1e-14
_MAX_ITER: Final = 500


def _check_survivors(survivors: Sequence[int]) -> tuple[int, ...]:
    if isinstance(survivors, str | bytes) or not isinstance(survivors, Sequence):
        raise ValidationError("survivors", survivors, "expected a sequence of whole counts")
    counts = tuple(survivors)
    for t, n in enumerate(counts):
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValidationError(f"survivors[{t}]", n, "expected a whole number of customers")
        if n < 0:
            raise ValidationError(f"survivors[{t}]", n, "cannot be negative")
    if len(counts) < 3:
        # One observed period pins down only alpha / (alpha + beta): two parameters need
        # at least two periods of churn.
        raise ValidationError(
            "survivors", counts, "need the cohort size and at least two periods (3 counts)"
        )
    if counts[0] == 0:
        raise ValidationError("survivors[0]", 0, "the cohort is empty")
    for t in range(1, len(counts)):
        if counts[t] > counts[t - 1]:
            raise ValidationError(
                f"survivors[{t}]", counts[t], f"survivors rise (from {counts[t - 1]})"
            )
    if counts[-1] == counts[0]:
        raise ValidationError("survivors", counts, "nobody churned: the sBG model cannot be fitted")
    if counts[1] == 0:
        raise ValidationError(
            "survivors", counts, "everyone churned in the first period: the model cannot be fitted"
        )
    return counts


@attrs.frozen
class _Derivatives:
    value: float
    ga: float  # d/d alpha
    gb: float
    haa: float
    hab: float
    hbb: float


def _log_likelihood(alpha: float, beta: float, counts: Sequence[int]) -> _Derivatives:
    """The log-likelihood and its first and second derivatives in (alpha, beta).

    Churners in period ``t`` contribute ``ln P(T = t)``; those still active after the last
    period contribute ``ln S(T)``. Both are sums of logarithms, so the derivatives are
    accumulated term by term alongside the value.
    """
    a, b = alpha, beta
    ab = a + b
    # ln P(T = 1) = ln a - ln(a + b)
    lp = math.log(a) - math.log(ab)
    pa, pb = 1 / a - 1 / ab, -1 / ab
    paa, pab, pbb = -1 / a**2 + 1 / ab**2, 1 / ab**2, 1 / ab**2
    ls = ls_a = ls_b = ls_aa = ls_ab = ls_bb = 0.0
    ll = ga = gb = haa = hab = hbb = 0.0
    for t in range(1, len(counts)):
        if t >= 2:
            # ln P(T = t) = ln P(T = t - 1) + ln(b + t - 2) - ln(a + b + t - 1)
            u, v = b + t - 2, ab + t - 1
            lp += math.log(u) - math.log(v)
            pa -= 1 / v
            pb += 1 / u - 1 / v
            paa += 1 / v**2
            pab += 1 / v**2
            pbb += -1 / u**2 + 1 / v**2
        # ln S(t) = ln S(t - 1) + ln(b + t - 1) - ln(a + b + t - 1)
        u, v = b + t - 1, ab + t - 1
        ls += math.log(u) - math.log(v)
        ls_a -= 1 / v
        ls_b += 1 / u - 1 / v
        ls_aa += 1 / v**2
        ls_ab += 1 / v**2
        ls_bb += -1 / u**2 + 1 / v**2
        churned = counts[t - 1] - counts[t]
        if churned:
            ll += churned * lp
            ga += churned * pa
            gb += churned * pb
            haa += churned * paa
            hab += churned * pab
            hbb += churned * pbb
    alive = counts[-1]
    if alive:
        ll += alive * ls
        ga += alive * ls_a
        gb += alive * ls_b
        haa += alive * ls_aa
        hab += alive * ls_ab
        hbb += alive * ls_bb
    return _Derivatives(ll, ga, gb, haa, hab, hbb)


def _in_log_space(
    x: float, y: float, counts: Sequence[int]
) -> tuple[float, float, float, float, float, float]:
    """Value, gradient and Hessian of the log-likelihood in ``(ln alpha, ln beta)``."""
    a, b = math.exp(x), math.exp(y)
    d = _log_likelihood(a, b, counts)
    gx, gy = a * d.ga, b * d.gb
    hxx = a * a * d.haa + gx
    hyy = b * b * d.hbb + gy
    hxy = a * b * d.hab
    return d.value, gx, gy, hxx, hxy, hyy


def _value(x: float, y: float, counts: Sequence[int]) -> float:
    if abs(x) > _BOUND or abs(y) > _BOUND:
        return -math.inf
    return _log_likelihood(math.exp(x), math.exp(y), counts).value


@attrs.frozen
class _Result:
    x: float
    y: float
    value: float
    converged: bool
    negative_definite: bool
    iterations: int


def _newton(x: float, y: float, counts: Sequence[int]) -> _Result:
    f, gx, gy, hxx, hxy, hyy = _in_log_space(x, y, counts)
    for iteration in range(1, _MAX_ITER + 1):
        # Solve (mu I - H) d = g with mu >= 0 making mu I - H positive definite: the plain
        # Newton step near a maximum, a shortened gradient step elsewhere.
        a11, a12, a22 = -hxx, -hxy, -hyy
        half_trace, det = (a11 + a22) / 2, a11 * a22 - a12 * a12
        smallest = half_trace - math.sqrt(max(half_trace * half_trace - det, 0.0))
        scale = max(abs(a11), abs(a22), 1.0)
        mu = 0.0 if smallest > 1e-12 * scale else 1e-6 * scale - smallest
        a11, a22 = a11 + mu, a22 + mu
        det = a11 * a22 - a12 * a12
        dx = (a22 * gx - a12 * gy) / det
        dy = (a11 * gy - a12 * gx) / det
        length = math.hypot(dx, dy)
        # Converged when the Newton step is negligible, or when the increase it predicts
        # (half of g.d) is below the rounding noise of the log-likelihood itself, so no
        # line search could tell a better point from a worse one.
        if mu == 0.0 and (
            length < _STEP_TOL or (gx * dx + gy * dy) / 2 < _NOISE * max(1.0, abs(f))
        ):
            return _Result(x, y, f, True, True, iteration)
        if length > _MAX_STEP:
            dx, dy = dx * _MAX_STEP / length, dy * _MAX_STEP / length
        slope = gx * dx + gy * dy
        step = 1.0
        while True:
            nx, ny = x + step * dx, y + step * dy
            nf = _value(nx, ny, counts)
            if nf >= f + 1e-4 * step * slope:
                break
            step /= 2
            if step < 1e-12:
                # No ascent along the direction at floating-point resolution: a maximum
                # as precise as the arithmetic allows (or a stall, judged by the caller).
                ok = mu == 0.0 and length < 1e-6
                return _Result(x, y, f, ok, ok, iteration)
        x, y = nx, ny
        f, gx, gy, hxx, hxy, hyy = _in_log_space(x, y, counts)
        if max(abs(x), abs(y)) >= _RUNOFF:
            # Far out along the ridge towards infinity: rounding noise in the likelihood
            # would only make the iterates wander, so stop and let the caller judge.
            return _Result(x, y, f, False, False, iteration)
    return _Result(x, y, f, False, hxx < 0 and hxx * hyy - hxy * hxy > 0, _MAX_ITER)


@attrs.frozen(kw_only=True)
class SbgFit:
    """A fitted sBG model: ``alpha``, ``beta`` and the maximised ``log_likelihood``.

    Periods are those of the survival data (months for monthly cohorts). All projections
    are floats except :meth:`projected_ltv`, which returns Money.
    """

    alpha: float = attrs.field(validator=lambda _i, _a, v: _check_parameter("alpha", v))
    beta: float = attrs.field(validator=lambda _i, _a, v: _check_parameter("beta", v))
    log_likelihood: float
    survivors: tuple[int, ...]
    iterations: int

    @property
    def cohort_size(self) -> int:
        return self.survivors[0]

    @property
    def periods(self) -> int:
        """Number of observed periods the model was fitted to."""
        return len(self.survivors) - 1

    def churn_probability(self, t: int) -> float:
        """``P(T = t)``: the probability that a new customer churns in period ``t >= 1``."""
        _check_period(t, 1)
        p = self.alpha / (self.alpha + self.beta)
        for k in range(2, t + 1):
            p *= (self.beta + k - 2) / (self.alpha + self.beta + k - 1)
        return p

    def survival(self, t: int) -> float:
        """``S(t)``: the share of the cohort still active after ``t >= 0`` periods."""
        _check_period(t, 0)
        s = 1.0
        for k in range(1, t + 1):
            s *= (self.beta + k - 1) / (self.alpha + self.beta + k - 1)
        return s

    def retention(self, t: int) -> float:
        """``r_t = S(t) / S(t - 1)``: the retention rate of period ``t >= 1``."""
        _check_period(t, 1)
        return (self.beta + t - 1) / (self.alpha + self.beta + t - 1)

    def survival_curve(self, periods: int) -> tuple[float, ...]:
        """``S(0), ..., S(periods)``."""
        _check_period(periods, 0, "periods")
        out = [1.0]
        for t in range(1, periods + 1):
            out.append(out[-1] * self.retention(t))
        return tuple(out)

    def retention_curve(self, periods: int) -> tuple[float, ...]:
        """``r_1, ..., r_periods``."""
        _check_period(periods, 0, "periods")
        return tuple(self.retention(t) for t in range(1, periods + 1))

    def projected_survivors(self, periods: int) -> tuple[float, ...]:
        """Expected survivors of this cohort after ``0..periods`` periods."""
        return tuple(self.cohort_size * s for s in self.survival_curve(periods))

    def expected_lifetime(self, horizon: int | None = None) -> float | None:
        """Expected number of periods a new customer stays (counting the first one).

        Without ``horizon``: ``E[T] = (alpha + beta - 1) / (alpha - 1)``, or ``None`` when
        ``alpha <= 1`` (the expectation is infinite: the Beta mixture puts enough mass near
        zero churn). With ``horizon = h``: the truncated expectation
        ``E[min(T, h)] = S(0) + ... + S(h - 1)``, always finite.
        """
        if horizon is None:
            if self.alpha <= 1:
                return None
            return (self.alpha + self.beta - 1) / (self.alpha - 1)
        _check_period(horizon, 1, "horizon")
        return math.fsum(self.survival_curve(horizon - 1))

    def projected_ltv(self, arpa: Money, *, horizon: int | None = None) -> Money | None:
        """``arpa x expected_lifetime(horizon)``: ``arpa`` is revenue per period of the data.

        ``None`` when the lifetime is unbounded (``alpha <= 1`` and no ``horizon``).
        """
        if not isinstance(arpa, Money):
            raise ValidationError("arpa", arpa, "expected Money")
        lifetime = self.expected_lifetime(horizon)
        if lifetime is None:
            return None
        # Through str, not Decimal(float): the float's shortest repr (at most 17 significant
        # digits) rather than its full binary expansion; the model is no more precise.
        return arpa * Decimal(repr(lifetime))


def _check_parameter(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, float | int):
        raise ValidationError(field, value, "expected a number")
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(field, value, "must be positive and finite")


def _check_period(t: object, low: int, field: str = "t") -> None:
    if isinstance(t, bool) or not isinstance(t, int) or t < low:
        raise ValidationError(field, t, f"expected a whole number >= {low}")


def fit_sbg(survivors: Sequence[int]) -> SbgFit:
    """Fit the sBG model to a cohort's survival counts by maximum likelihood.

    ``survivors[0]`` is the cohort size and ``survivors[t]`` the customers still active
    after ``t`` periods (non-increasing, at least three counts). Raises
    :class:`~revcrm.errors.ValidationError` (field ``survivors``) on data that cannot be
    fitted: rising counts, an empty cohort, nobody churning, everyone churning in the
    first period, or churn that does not fall with tenure (no finite maximum).
    """
    counts = _check_survivors(survivors)
    results = [_newton(math.log(a0), math.log(b0), counts) for a0 in _STARTS for b0 in _STARTS]
    # The best point overall decides whether the maximum is at infinity; among the strict
    # local maxima found, the highest is the estimate (starts that reach the same maximum
    # differ only by rounding).
    best = max(results, key=lambda r: r.value)
    maxima = [r for r in results if r.converged and r.negative_definite]
    if max(best.x, best.y) > _RIDGE:
        raise ValidationError(
            "survivors",
            counts,
            "no finite maximum: churn does not fall with tenure, so the likelihood rises "
            "towards a constant-churn (geometric) model; use a constant churn rate instead",
        )
    if (
        not maxima
        or max(r.value for r in maxima) < best.value - _NOISE * max(1.0, abs(best.value)) * 100
    ):
        raise ValidationError(
            "survivors", counts, "the likelihood has no strict maximum the optimiser could reach"
        )
    best = max(maxima, key=lambda r: r.value)
    return SbgFit(
        alpha=math.exp(best.x),
        beta=math.exp(best.y),
        log_likelihood=best.value,
        survivors=counts,
        iterations=best.iterations,
    )
