"""gmmdiff.tv against `gmmdiff tv --json`, and every dtype, memory order and stride of the sample."""
import warnings

import numpy as np
import pytest

import gmmdiff
from conftest import load_json, run_cli

PRESET = ["--preset", "random-sphere", "--d", 8, "--K", 4, "--radius", 3, "--model-seed", 1]
STATS = "means,random:4,radial,means2d"


def cli_tv(tmp_path, sample_file, *args):
    out = tmp_path / "tv.json"
    r = run_cli("tv", sample_file, *PRESET, "--json", out, *args)
    return load_json(out), r


def without_sample(d):
    return {k: v for k, v in d.items() if k != "sample"}


@pytest.fixture(scope="module")
def y(tmp_path_factory):
    mix = gmmdiff.Mixture.preset("random-sphere", d=8, K=4, radius=3, seed=1)
    return gmmdiff.sample(mix, n=5000, T=16, seed=2)


def test_array_and_file_equal_cli(tmp_path, small_mix, y):
    f = tmp_path / "y.npy"
    np.save(f, y)
    want, _ = cli_tv(tmp_path, f, "--stat", STATS, "--seed", 3, "--bootstrap", 50)
    got = gmmdiff.tv(y, small_mix, stats=STATS, seed=3, bootstrap=50)
    assert without_sample(got) == without_sample(want)  # every float bit for bit
    assert got["sample"] is None
    got_file = gmmdiff.tv(f, small_mix, stats=STATS, seed=3, bootstrap=50)
    assert got_file == want  # the path too
    assert got_file["sample"] == str(f)


def test_options_equal_cli(tmp_path, small_mix, y):
    f = tmp_path / "y.npy"
    np.save(f, y)
    want, _ = cli_tv(tmp_path, f, "--stat", "axes:3,random:2", "--bins", 12, "--reference-n", 3000, "--chunk", 700)
    got = gmmdiff.tv(y, small_mix, stats="axes:3,random:2", bins=12, reference_n=3000, chunk=700)
    assert without_sample(got) == without_sample(want)
    assert got["options"] == {"stats": "axes:3,random:2", "bins": 12, "bootstrap": 200, "seed": 0,
                              "reference_n": 3000}


def layouts(y):
    """The same rows in other dtypes, orders and strides (every value exactly representable)."""
    big = np.full((2 * y.shape[0], 3 * y.shape[1]), np.nan, dtype=np.float32)
    big[::2, 1::3] = y
    yield "float64", y.astype(np.float64)
    yield "fortran", np.asfortranarray(y)
    yield "fortran float64", np.asfortranarray(y.astype(np.float64))
    yield "strided view", big[::2, 1::3]
    yield "rows reversed", y[::-1]  # negative strides; counts do not depend on the order
    yield "columns of a transposed array", np.ascontiguousarray(y.T).T
    unaligned = np.frombuffer(b"\0" + y.astype(np.float64).tobytes(), dtype=np.float64, offset=1)
    yield "unaligned float64", unaligned.reshape(y.shape)


def test_dtypes_orders_and_strides_give_the_same_figures(small_mix, y):
    ref = gmmdiff.tv(y, small_mix, stats=STATS, bootstrap=50)
    for name, a in layouts(y):
        assert np.array_equal(a[::-1] if name == "rows reversed" else a, y), name
        assert gmmdiff.tv(a, small_mix, stats=STATS, bootstrap=50) == ref, name
    assert gmmdiff.tv(y.tolist(), small_mix, stats=STATS, bootstrap=50) == ref  # any array-like


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_samples_equal_cli(tmp_path, small_mix, y, dtype):
    yi = np.round(y).astype(dtype)
    f = tmp_path / "yi.npy"
    np.save(f, yi)
    want, _ = cli_tv(tmp_path, f, "--bootstrap", 50)
    assert without_sample(gmmdiff.tv(yi, small_mix, bootstrap=50)) == without_sample(want)
    assert without_sample(gmmdiff.tv(np.asfortranarray(yi), small_mix, bootstrap=50)) == without_sample(want)


def test_d1_sample_may_be_one_dimensional(tmp_path):
    mix = gmmdiff.Mixture.preset("two-point", d=1, radius=1.5)
    y = gmmdiff.sample(mix, n=3000, T=16)
    f = tmp_path / "y1.npy"
    np.save(f, y[:, 0])
    out = tmp_path / "tv.json"
    run_cli("tv", f, "--preset", "two-point", "--d", 1, "--radius", 1.5, "--json", out)
    assert without_sample(gmmdiff.tv(y[:, 0], mix)) == without_sample(load_json(out))
    assert gmmdiff.tv(y, mix) == gmmdiff.tv(y[:, 0], mix)


def test_nan_rows_warn_as_the_cli_does(tmp_path, small_mix, y):
    yn = y.copy()
    yn[[5, 17]] = np.nan
    yn[40, 3] = np.inf
    f = tmp_path / "yn.npy"
    np.save(f, yn)
    want, r = cli_tv(tmp_path, f, "--bootstrap", 50)
    assert want["nonfinite"] == 3
    cli_warning = [l for l in r.err.splitlines() if l.startswith("gmmdiff: warning: ")]
    assert len(cli_warning) == 1
    with pytest.warns(RuntimeWarning) as rec:
        got = gmmdiff.tv(f, small_mix, bootstrap=50)
    assert str(rec[0].message) == cli_warning[0][len("gmmdiff: warning: "):]
    assert got == want
    with pytest.warns(RuntimeWarning, match=r"^sample: 3 of 5000 rows hold NaN or Inf"):
        got = gmmdiff.tv(yn, small_mix, bootstrap=50)
    assert without_sample(got) == without_sample(want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning):
            gmmdiff.tv(yn, small_mix, bootstrap=50)


def test_mixture_from_a_model_file(tmp_path, small_mix, y):
    model = tmp_path / "m.json"
    small_mix.to_json(model)
    assert gmmdiff.tv(y, str(model), bootstrap=50) == gmmdiff.tv(y, small_mix, bootstrap=50)


def key_tree(v):
    """The keys of v at every depth (lists element by element), without the values."""
    if isinstance(v, dict):
        return {k: key_tree(x) for k, x in v.items()}
    if isinstance(v, list):
        return [key_tree(x) for x in v]
    return None


def test_keys_equal_cli_json_keys(tmp_path, small_mix, y):
    # Both come from tv_json: the same keys at every depth, for one sample and (the keys Python
    # fills with None/0) for `gmmdiff tv --against`.
    f = tmp_path / "y.npy"
    np.save(f, y)
    want, _ = cli_tv(tmp_path, f, "--stat", STATS, "--bootstrap", 20)
    for sample in (y, f):
        got = gmmdiff.tv(sample, small_mix, stats=STATS, bootstrap=20)
        assert key_tree(got) == key_tree(want)
        assert list(got) == list(want)  # the same order too (the JSON's)
    assert set(want) == {"sample", "n", "nonfinite", "finite", "d", "K", "backend", "options", "stats", "best", "max",
                         "best_kl", "max_kl", "selection", "against", "against_n", "against_nonfinite", "notes"}
    assert set(want["max"]) == {"name", "dims", "bins", "tv", "tv_corrected", "floor", "ci95", "ci95_joint_lo",
                                "resolved", "exact_target", "reference_n", "kl", "kl_mm", "kl_ci95"}
    g = tmp_path / "y2.npy"
    np.save(g, y[::2])
    two, _ = cli_tv(tmp_path, f, "--stat", STATS, "--bootstrap", 20, "--against", g)
    assert two["against"] == str(g) and two["against_n"] == y.shape[0] // 2
    got = gmmdiff.tv(y, small_mix, stats=STATS, bootstrap=20)
    assert key_tree(got) == key_tree(two)
    assert got["against"] is None and got["against_n"] == 0 and got["against_nonfinite"] == 0
