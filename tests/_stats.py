"""Statistical assertions with one named false-alarm budget.

Each assertion fails a correct sampler with probability ALPHA. The suite makes
well under 2000 statistical assertions, so its chance of a false alarm is below
2000 * ALPHA = 0.2%. Keys are fixed, so a failure is reproducible: treat it as a
bug report, never as a reason to change a key or loosen a threshold.
"""

import math

import numpy as np
import scipy.stats

ALPHA = 1e-6  # false-alarm probability of each statistical assertion
Z = float(scipy.stats.norm.isf(ALPHA / 2))  # two-sided z threshold, ~4.89


def _as_float64(samples: object) -> np.ndarray:
    return np.asarray(samples, dtype=np.float64).ravel()


def assert_moments(samples: object, law: scipy.stats.rv_continuous) -> None:
    """z-tests on the mean and on the second moment; the scale test (KS is weak)."""
    x = _as_float64(samples)
    n = x.size
    mean, var = float(law.mean()), float(law.var())
    z_mean = (x.mean() - mean) / math.sqrt(var / n)
    m2 = mean**2 + var
    m4 = float(law.moment(4))
    centered = x**2
    z_m2 = (centered.mean() - m2) / math.sqrt((m4 - m2**2) / n)
    assert abs(z_mean) < Z, f"mean {x.mean():.6g} vs {mean:.6g} (z={z_mean:.2f})"
    assert abs(z_m2) < Z, f"E[x^2] {centered.mean():.6g} vs {m2:.6g} (z={z_m2:.2f})"


def assert_ks(samples: object, law: scipy.stats.rv_continuous) -> None:
    """One-sample Kolmogorov-Smirnov test against the exact law (shape test)."""
    result = scipy.stats.kstest(_as_float64(samples), law.cdf)
    assert result.pvalue > ALPHA, f"KS p={result.pvalue:.3g}, D={result.statistic:.4g}"


def assert_same_law(samples: object, reference: object) -> None:
    """Two-sample Kolmogorov-Smirnov test, e.g. jaxinit against torch's samples."""
    result = scipy.stats.ks_2samp(_as_float64(samples), _as_float64(reference))
    assert result.pvalue > ALPHA, f"KS2 p={result.pvalue:.3g}, D={result.statistic:.4g}"
