"""K = 1 through the Python API: the output is Gaussian with the mean and variance of the
recursion in THEORY.md ("Exact facts to test against"), computed here independently in NumPy
from gmmdiff.schedule()."""
import numpy as np
import pytest

import gmmdiff

N = 200_000
# Sampling error bounds, in standard errors: a mean is off by more than this many sqrt(V/n) with
# probability about 6e-7, a variance by this many V sqrt(2/n) about as rarely (n is large).
SIGMAS = 5.0


def closed_form(sched, mu, s, sampler, variance, stop):
    """Mean and variance per coordinate of Y_stop for the target N(mu, s^2 I)."""
    a, ab, om = sched["alpha"], sched["abar"], sched["one_minus_abar"]
    m = np.zeros_like(mu)
    V = 1.0
    for t in range(sched["T"], stop, -1):
        one_minus_alpha = (om[t] - om[t - 1]) / ab[t - 1]  # as the driver computes it
        kappa = one_minus_alpha if sampler == "ddpm" else 0.5 * one_minus_alpha
        v = ab[t] * s * s + om[t]
        c = (1.0 - kappa / v) / np.sqrt(a[t])
        if sampler == "ddim":
            sig2 = 0.0
        elif variance == "beta":
            sig2 = one_minus_alpha
        elif variance == "posterior":
            sig2 = om[t - 1] / om[t] * one_minus_alpha
        else:  # inside
            sig2 = one_minus_alpha / a[t]
        m = c * m + kappa * np.sqrt(ab[t]) * mu / (v * np.sqrt(a[t]))
        V = c * c * V + sig2
    return m, V


@pytest.mark.parametrize(
    "sampler,variance,stop,schedule",
    [("ddpm", "beta", 1, "lcw"), ("ddpm", "posterior", 0, "linear"), ("ddpm", "inside", 1, "cosine"),
     ("ddim", "beta", 1, "lcw")],
)
def test_gaussian_target_matches_closed_form(sampler, variance, stop, schedule):
    d, radius, s, T = 4, 2.0, 0.5, 64
    mix = gmmdiff.Mixture.preset("gaussian", d=d, radius=radius, sd=s)
    assert mix.K == 1
    mu = np.array(mix.means[0])
    np.testing.assert_array_equal(mu, [radius, 0, 0, 0])
    y = gmmdiff.sample(mix, n=N, T=T, sampler=sampler, variance=variance, stop=stop, schedule=schedule,
                       precision="fp64", seed=21)
    m, V = closed_form(gmmdiff.schedule(schedule, T=T), mu, s, sampler, variance, stop)
    mean, var = y.mean(axis=0), y.var(axis=0)
    params = f"{sampler}/{variance} stop={stop} {schedule}: mean {mean} vs {m}, var {var} vs {V}"
    assert np.all(np.abs(mean - m) < SIGMAS * np.sqrt(V / N)), params
    assert np.all(np.abs(var - V) < SIGMAS * V * np.sqrt(2.0 / N)), params
