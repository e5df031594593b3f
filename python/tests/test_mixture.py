"""gmmdiff.Mixture: construction, read-only views, JSON and pickle round trips, and its exact
log-density and score against independent NumPy computations."""
import pickle

import numpy as np
import pytest

import gmmdiff
from conftest import assert_same_bits, run_cli

# Central differences of log p in float64 with step H agree with the exact score to about
# H^2 |third derivative| + eps/H; for these O(1) mixtures 1e-6 is ample.
H = 1e-5
SCORE_TOL = 1e-6


def diag_mix():
    return gmmdiff.Mixture(means=[[3.0, 0.0, 1.0], [-1.0, 1.0, 0.0]], weights=[0.3, 0.7],
                           var_diag=[[1.0, 0.5, 2.0], [0.25, 1.0, 1.0]])


def test_arrays_in_any_order_and_dtype():
    means = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    ref = gmmdiff.Mixture(means, sd=[1.0, 0.5])
    for m in (np.asfortranarray(means), means.astype(np.float32).astype(np.float64), means.tolist()):
        assert gmmdiff.Mixture(m, sd=np.array([1.0, 0.5])) == ref
    assert gmmdiff.Mixture(np.array([[1, 2, 3], [-1, 0, 0]], dtype=np.int32)).means.dtype == np.float64
    assert ref.K == 2 and ref.d == 3 and ref.covariance == "isotropic"
    np.testing.assert_array_equal(ref.weights, [0.5, 0.5])
    np.testing.assert_array_equal(ref.sd, [1.0, 0.5])
    assert ref.var_diag is None
    d = diag_mix()
    assert d.covariance == "diagonal" and d.sd is None and d.var_diag.shape == (2, 3)


def test_views_are_read_only_and_keep_the_mixture_alive():
    m = gmmdiff.Mixture.preset("simplex", d=4, K=5, radius=2.0)
    means = m.means
    assert means.shape == (5, 4) and not means.flags["WRITEABLE"]
    with pytest.raises(ValueError):
        means[0, 0] = 1.0
    del m
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), 2.0, rtol=1e-12)


def test_json_round_trip_and_the_cli_reads_it(tmp_path):
    m = diag_mix()
    f = tmp_path / "m.json"
    m.to_json(f)
    assert gmmdiff.Mixture.from_json(f) == m
    out = tmp_path / "y.npy"
    run_cli("sample", "--model", f, "--n", 500, "--T", 16, "--seed", 4, "--out", out)
    assert_same_bits(gmmdiff.sample(m, n=500, T=16, seed=4), np.load(out), "model written by to_json")


def test_preset_equals_cli_model_seed(tmp_path):
    m = gmmdiff.Mixture.preset("random-sphere", d=5, K=3, radius=2.5, sd=[0.5, 1.0, 2.0], weights=[0.2, 0.3, 0.5],
                               seed=9)
    np.testing.assert_allclose(np.linalg.norm(m.means, axis=1), 2.5, rtol=1e-12)
    out = tmp_path / "y.npy"
    run_cli("sample", "--preset", "random-sphere", "--d", 5, "--K", 3, "--radius", 2.5, "--sd", "0.5,1,2",
            "--weights", "0.2,0.3,0.5", "--model-seed", 9, "--n", 400, "--T", 8, "--out", out)
    assert_same_bits(gmmdiff.sample(m, n=400, T=8), np.load(out), "preset")


def test_pickle():
    for m in (diag_mix(), gmmdiff.Mixture.preset("two-point", d=3, sd=0.5)):
        m2 = pickle.loads(pickle.dumps(m))
        assert m2 == m and m2 is not m
        assert repr(m2) == repr(m)


def numpy_log_density(m, x):
    var = m.var_diag if m.var_diag is not None else np.repeat((m.sd ** 2)[:, None], m.d, axis=1)
    logs = []
    for k in range(m.K):
        r = x - m.means[k]
        logs.append(np.log(m.weights[k]) - 0.5 * np.sum(np.log(2 * np.pi * var[k]) + r * r / var[k], axis=-1))
    return np.logaddexp.reduce(np.array(logs), axis=0)


@pytest.mark.parametrize("make", [diag_mix, lambda: gmmdiff.Mixture.preset("random-sphere", d=3, K=4, sd=0.7)])
def test_log_density_and_score(make):
    m = make()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, m.d)) * 2
    np.testing.assert_allclose(m.log_density(x), numpy_log_density(m, x), rtol=1e-12, atol=1e-12)
    assert isinstance(m.log_density(x[0]), float)
    for abar in (1.0, 0.3):
        mt = m.forward_marginal(abar)
        s = m.score(x, abar=abar)
        assert s.shape == x.shape
        fd = np.empty_like(x)
        for j in range(m.d):
            e = np.zeros(m.d)
            e[j] = H
            fd[:, j] = (mt.log_density(x + e) - mt.log_density(x - e)) / (2 * H)
        np.testing.assert_allclose(s, fd, atol=SCORE_TOL, err_msg=f"abar={abar}")
        np.testing.assert_array_equal(m.score(x[3], abar=abar), s[3])


def test_bad_point_shapes():
    m = diag_mix()
    with pytest.raises(ValueError, match=r"x must be a point \(3,\) or points \(n, 3\), got shape \(2,\)"):
        m.log_density([1.0, 2.0])
    with pytest.raises(ValueError, match=r"abar = 1.5 \(need 0 <= abar <= 1\)"):
        m.score(np.zeros(3), abar=1.5)
