"""The Universal Scalability Law (Gunther), fitted by hand-written least squares.

C(N) = N / (1 + alpha (N - 1) + beta N (N - 1)) is the relative capacity and X(N) = X(1) C(N)
the throughput; alpha is contention (serialisation: Amdahl), beta coherency (crosstalk:
only beta makes a curve retrograde); the peak is at N* = sqrt((1 - alpha) / beta).

The fit linearises the law: with y = N X(1) / X(N) - 1 = alpha (N - 1) + beta N (N - 1), a
least-squares fit of (alpha, beta) through the origin is a 2x2 linear system; coefficients
are kept >= 0 (a negative one is set to 0 and the other refitted). X(1) is the measured
one-CPU throughput, or extrapolated from the smallest N measured (assuming linearity up to
it). The fit error is the root mean square of the relative error of the fitted X(N).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class USLFit:
    alpha: float
    beta: float
    x1: float
    #: root mean square of (fitted X - measured X) / measured X over the points
    rms_rel_error: float
    points: int

    @property
    def peak_cpus(self) -> float:
        """N* = sqrt((1 - alpha) / beta): where throughput peaks (inf when beta is 0)."""
        if self.beta <= 0:
            return math.inf
        return math.sqrt(max(0.0, 1 - self.alpha) / self.beta)

    def predict(self, n: float) -> float:
        return self.x1 * n / (1 + self.alpha * (n - 1) + self.beta * n * (n - 1))

    def as_dict(self) -> dict[str, float | int | None]:
        peak = self.peak_cpus
        return {"alpha": self.alpha, "beta": self.beta, "x1": self.x1, "rms_rel_error": self.rms_rel_error,
                "peak_cpus": None if math.isinf(peak) else peak, "points": self.points}


def fit_usl(cpus: Sequence[int], throughput: Sequence[float]) -> USLFit:
    """Fit alpha and beta to the throughput measured at each CPU count (at least 2 points)."""
    if len(cpus) != len(throughput) or len(cpus) < 2:
        raise ValueError("fit_usl needs at least two (cpus, throughput) points of equal length")
    pts = sorted(zip(cpus, throughput))
    n0, x0 = pts[0]
    if x0 <= 0:
        raise ValueError("fit_usl: throughput must be positive")
    x1 = x0 / n0  # X(1) itself when N = 1 was measured
    rows = [(n - 1.0, n * (n - 1.0), n * x1 / x - 1.0) for n, x in pts if n > 1 and x > 0]

    def solve(use_a: bool, use_b: bool) -> tuple[float, float]:
        saa = sum(a * a for a, _, _ in rows)
        sbb = sum(b * b for _, b, _ in rows)
        sab = sum(a * b for a, b, _ in rows)
        say = sum(a * y for a, _, y in rows)
        sby = sum(b * y for _, b, y in rows)
        if use_a and use_b:
            det = saa * sbb - sab * sab
            if abs(det) > 1e-12 * max(1.0, saa * sbb):
                return (say * sbb - sby * sab) / det, (saa * sby - sab * say) / det
            use_b = False
        if use_a:
            return (say / saa if saa else 0.0), 0.0
        return 0.0, (sby / sbb if sbb else 0.0)

    alpha, beta = solve(True, True) if rows else (0.0, 0.0)
    if alpha < 0 or beta < 0:
        a_only = solve(True, False)
        b_only = solve(False, True)
        cands = [(max(0.0, a_only[0]), 0.0), (0.0, max(0.0, b_only[1]))]

        def sse(ab: tuple[float, float]) -> float:
            return sum((ab[0] * a + ab[1] * b - y) ** 2 for a, b, y in rows)

        alpha, beta = min(cands, key=sse)
    fit = USLFit(alpha, beta, x1, 0.0, len(pts))
    errs = [((fit.predict(n) - x) / x) ** 2 for n, x in pts]
    return USLFit(alpha, beta, x1, math.sqrt(sum(errs) / len(errs)), len(pts))


__all__ = ["USLFit", "fit_usl"]
