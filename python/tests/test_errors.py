"""Bad input through the Python API: the exception type docs/python.md promises and the CLI's
own one-line message, compared with what `gmmdiff` prints for the same input."""
import json
import os

import numpy as np
import pytest

import gmmdiff
from conftest import ROOT, run_cli

BAD = "tests/data/bad"  # relative to the source tree (the CLI runs there): messages name it so
TP = ["--preset", "two-point", "--d", 2]


def two_point():
    return gmmdiff.Mixture.preset("two-point", d=2)


# (id, CLI arguments after `gmmdiff`, the same input through Python). Each must raise ValueError
# with exactly the CLI's message; "{out}" is a scratch output file.
SAME_MESSAGE = [
    ("n=0", ["sample", *TP, "--n", 0, "--out", "{out}"], lambda: gmmdiff.sample(two_point(), n=0)),
    ("T=0", ["sample", *TP, "--T", 0, "--out", "{out}"], lambda: gmmdiff.sample(two_point(), T=0)),
    ("T too large", ["sample", *TP, "--T", 20000000, "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), T=20000000)),
    ("sampler", ["sample", *TP, "--sampler", "euler", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), sampler="euler")),
    ("variance", ["sample", *TP, "--variance", "huge", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), variance="huge")),
    ("precision", ["sample", *TP, "--precision", "fp16", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), precision="fp16")),
    ("score error", ["sample", *TP, "--score-error", "noise", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), score_error="noise")),
    ("stop", ["sample", *TP, "--stop", 2, "--out", "{out}"], lambda: gmmdiff.sample(two_point(), stop=2)),
    ("eps<0", ["sample", *TP, "--score-error", "bias", "--eps", -1, "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), score_error="bias", eps=-1)),
    ("eps nan", ["sample", *TP, "--score-error", "bias", "--eps", "nan", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), score_error="bias", eps=float("nan"))),
    ("eps samples", ["sample", *TP, "--eps-samples", 0, "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), eps_samples=0)),
    ("backend", ["sample", *TP, "--backend", "gpu", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), backend="gpu")),
    ("threads", ["sample", *TP, "--threads", -1, "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), threads=-1)),
    ("schedule", ["sample", *TP, "--schedule", "sigmoid", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), schedule="sigmoid")),
    ("schedule file missing", ["sample", *TP, "--schedule", "file", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), schedule="file")),
    ("schedule alpha 0", ["sample", *TP, "--schedule", "file", "--schedule-file", f"{BAD}/sched_alpha_zero.json",
                          "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), schedule="file", schedule_file=f"{BAD}/sched_alpha_zero.json")),
    ("schedule abar up", ["sample", *TP, "--schedule", "file", "--schedule-file",
                          f"{BAD}/sched_abar_increasing.json", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), schedule="file", schedule_file=f"{BAD}/sched_abar_increasing.json")),
    ("schedule nan npy", ["sample", *TP, "--schedule", "file", "--schedule-file", f"{BAD}/sched_nan.npy",
                          "--schedule-kind", "alpha", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), schedule="file", schedule_file=f"{BAD}/sched_nan.npy",
                            schedule_kind="alpha")),
    ("c0", ["sample", *TP, "--c0", -1, "--out", "{out}"], lambda: gmmdiff.sample(two_point(), c0=-1)),
    ("snapshot", ["sample", *TP, "--T", 8, "--snapshot", 99, "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), T=8, snapshot=[99])),
    ("eta range", ["sample", *TP, "--sampler", "ddim-song", "--eta", 1.5, "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), sampler="ddim-song", eta=1.5)),
    ("eta with ddpm", ["sample", *TP, "--eta", 0.5, "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), eta=0.5)),
    ("error profile", ["sample", *TP, "--error-profile", "middle", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), error_profile="middle")),
    ("profile file without factors", ["sample", *TP, "--score-error", "scale", "--eps", 0.1, "--error-profile", "file",
                                      "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), score_error="scale", eps=0.1, error_profile="file")),
    ("factors with another profile", ["sample", *TP, "--error-profile", "front-loaded", "--error-factors",
                                      f"{BAD}/sched_values.txt", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), error_profile="front-loaded", error_factors=f"{BAD}/sched_values.txt")),
    ("factors file missing", ["sample", *TP, "--error-factors", f"{BAD}/no_such_factors.txt", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), error_factors=f"{BAD}/no_such_factors.txt")),
    ("factors count", ["sample", *TP, "--T", 8, "--score-error", "scale", "--eps", 0.1, "--error-factors",
                       f"{BAD}/sched_values.txt", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), T=8, score_error="scale", eps=0.1, error_factors=f"{BAD}/sched_values.txt")),
    ("factors count as a list", ["sample", *TP, "--T", 8, "--score-error", "scale", "--eps", 0.1, "--error-factors",
                                 f"{BAD}/sched_values.txt", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), T=8, score_error="scale", eps=0.1, error_factors=[0.99, 0.9, 0.5, 0.1])),
    ("bias direction zero", ["sample", *TP, "--score-error", "bias", "--eps", 0.1, "--bias-direction", "0,0",
                             "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), score_error="bias", eps=0.1, bias_direction="0,0")),
    ("bias direction zero as a list", ["sample", *TP, "--score-error", "bias", "--eps", 0.1, "--bias-direction",
                                       "0,0", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), score_error="bias", eps=0.1, bias_direction=[0, 0])),
    ("bias direction length", ["sample", *TP, "--score-error", "bias", "--eps", 0.1, "--bias-direction", "1,2,3",
                               "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), score_error="bias", eps=0.1, bias_direction=[1, 2, 3])),
    ("bias direction text", ["sample", *TP, "--bias-direction", "1,x", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), bias_direction="1,x")),
    ("bias direction nan", ["sample", *TP, "--bias-direction", "1,nan", "--out", "{out}"],
     lambda: gmmdiff.sample(two_point(), bias_direction=[1.0, float("nan")])),
    ("preset", ["sample", "--preset", "cube", "--out", "{out}"], lambda: gmmdiff.Mixture.preset("cube")),
    ("preset K", ["sample", "--preset", "two-point", "--K", 3, "--out", "{out}"],
     lambda: gmmdiff.Mixture.preset("two-point", K=3)),
    ("radius nan", ["sample", "--preset", "two-point", "--radius", "nan", "--out", "{out}"],
     lambda: gmmdiff.Mixture.preset("two-point", radius=float("nan"))),
    ("simplex K", ["sample", "--preset", "simplex", "--d", 2, "--K", 5, "--out", "{out}"],
     lambda: gmmdiff.Mixture.preset("simplex", d=2, K=5)),
    ("model missing", ["sample", "--model", f"{BAD}/no_such_model.json", "--out", "{out}"],
     lambda: gmmdiff.sample(f"{BAD}/no_such_model.json")),
    ("tv stats", ["tv", f"{BAD}/sample_some_nan.npy", *TP, "--stat", "median"],
     lambda: gmmdiff.tv(f"{BAD}/sample_some_nan.npy", two_point(), stats="median")),
    ("tv bins", ["tv", f"{BAD}/sample_some_nan.npy", *TP, "--bins", 1],
     lambda: gmmdiff.tv(f"{BAD}/sample_some_nan.npy", two_point(), bins=1)),
    ("tv bootstrap", ["tv", f"{BAD}/sample_some_nan.npy", *TP, "--bootstrap", 1],
     lambda: gmmdiff.tv(f"{BAD}/sample_some_nan.npy", two_point(), bootstrap=1)),
]
# Every bad model file and bad sample file of the CLI's bad-input table (docs/reliability.md).
MODEL_FILES = ["model_K0.json", "model_K_mismatch.json", "model_d0.json", "model_malformed.json",
               "model_means_dtype.json", "model_means_nan.json", "model_means_not_npy.json",
               "model_means_truncated.json", "model_negative_weight.json", "model_ragged_means.json",
               "model_sd_zero.json", "model_unknown_key.json", "model_var_d_mismatch.json",
               "model_weights_sum.json"]
SAMPLE_FILES = ["sample_0rows.npy", "sample_3d.npy", "sample_all_nan.npy", "sample_bad_version.npy",
                "sample_d3.npy", "sample_header_truncated.npy", "not_npy.npy", "huge_shape.npy"]
for f in MODEL_FILES:
    SAME_MESSAGE.append((f, ["sample", "--model", f"{BAD}/{f}", "--n", 16, "--T", 4, "--out", "{out}"],
                         lambda f=f: gmmdiff.Mixture.from_json(f"{BAD}/{f}")))
    SAME_MESSAGE.append((f + " via sample", ["sample", "--model", f"{BAD}/{f}", "--n", 16, "--T", 4, "--out", "{out}"],
                         lambda f=f: gmmdiff.sample(f"{BAD}/{f}", n=16, T=4)))
for f in SAMPLE_FILES:
    SAME_MESSAGE.append((f, ["tv", f"{BAD}/{f}", *TP], lambda f=f: gmmdiff.tv(f"{BAD}/{f}", two_point())))


@pytest.fixture
def in_source_tree():
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)


@pytest.mark.parametrize("case", SAME_MESSAGE, ids=[c[0] for c in SAME_MESSAGE])
def test_value_error_with_the_cli_message(tmp_path, in_source_tree, case):
    name, cli_args, call = case
    args = [str(tmp_path / "y.npy") if a == "{out}" else a for a in cli_args]
    r = run_cli(*args, cwd=ROOT, check=False)
    assert r.rc == 2, f"{name}: CLI exit {r.rc}, stderr {r.err}"
    with pytest.raises(ValueError) as e:
        call()
    assert str(e.value) == r.error_line(), name
    assert not isinstance(e.value, (MemoryError, ArithmeticError))


SAMPLE_ARRAYS = {  # the same bad samples as arrays: the same message, naming "sample"
    "sample_0rows.npy": "sample: empty sample (0 rows)",
    "sample_3d.npy": "sample: a sample must be an (n, d) array, got 3 dimensions",
    "sample_d3.npy": "sample: the sample has d = 3 columns but the model has d = 2",
    "sample_all_nan.npy": "all 2 rows of the sample hold NaN or Inf: no finite rows to estimate TV from",
}


@pytest.mark.parametrize("f", sorted(SAMPLE_ARRAYS))
def test_bad_sample_arrays(f):
    a = np.load(ROOT / BAD / f)
    with pytest.raises(ValueError) as e:
        gmmdiff.tv(a, two_point())
    assert str(e.value) == SAMPLE_ARRAYS[f]


@pytest.mark.parametrize("a,msg", [
    (np.zeros((10, 2), dtype=np.complex128), "sample: unsupported dtype 'complex128' (allowed: float32, float64, "
                                             "int32, int64, native byte order)"),
    (np.zeros((10, 2), dtype=np.float16), "sample: unsupported dtype 'float16'"),
    (np.zeros((10, 2), dtype=">f8"), "sample: unsupported dtype '>f8'"),
    (np.zeros((10, 2), dtype=bool), "sample: unsupported dtype 'bool'"),
    (np.array([["a", "b"]]), "sample: unsupported dtype '<U1'"),
    (np.float64(3.0), "sample: a sample must be an (n, d) array, got 0 dimensions"),
])
def test_bad_sample_dtypes(a, msg):
    with pytest.raises(ValueError) as e:
        gmmdiff.tv(a, two_point())
    assert str(e.value).startswith(msg)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(means=[[0.0, np.nan], [1.0, 1.0]]), "model: means[0][1] is nan (must be finite)"),
    (dict(means=[[0.0, 0.0], [1.0, 1.0]], weights=[0.5, -0.5]), "model: weights[1] = -0.5"),
    (dict(means=[[0.0, 0.0], [1.0, 1.0]], weights=[0.3, 0.3]), "model: weights sum to 0.6"),
    (dict(means=[[0.0, 0.0], [1.0, 1.0]], sd=0.0), "model: sd[0] = 0 (must be positive)"),
    (dict(means=[[0.0, 0.0], [1.0, 1.0]], sd=[1.0, 2.0, 3.0]), "model: sd has 3 entries but there are 2 components"),
    (dict(means=[[0.0, 0.0], [1.0, 1.0]], var_diag=[[1.0, 1.0]]), "var_diag is (1, 2) but means is (2, 2)"),
    (dict(means=[[0.0, 0.0], [1.0, 1.0]], sd=1.0, var_diag=[[1.0, 1.0], [1.0, 1.0]]),
     "give at most one of 'sd', 'var_diag'"),
    (dict(means=[1.0, 2.0]), "model: means must be a (K, d) array, got shape (2,)"),
    (dict(means=np.zeros((0, 3))), "model: K = 0 (need at least one component)"),
    (dict(means=[["a", "b"]]), "model: means must be an array of numbers (got dtype <U1)"),
    (dict(means=[[0.0, 0.0]], weights=[[1.0]]), "model: weights must be a 1-D array of K values"),
])
def test_bad_mixture_arrays(kwargs, msg):
    with pytest.raises(ValueError) as e:
        gmmdiff.Mixture(**kwargs)
    assert str(e.value).startswith(msg), str(e.value)


def test_normalize_weights():
    m = gmmdiff.Mixture([[0.0, 0.0], [1.0, 1.0]], weights=[1.0, 3.0], normalize_weights=True)
    np.testing.assert_allclose(m.weights, [0.25, 0.75], rtol=1e-15)


def test_types_are_type_errors(small_mix):
    with pytest.raises(TypeError, match="mixture must be a gmmdiff.Mixture or the path"):
        gmmdiff.sample(5)
    with pytest.raises(TypeError, match="info must be a dict"):
        gmmdiff.sample(small_mix, n=10, T=2, info=[])
    with pytest.raises(TypeError, match="progress must be a callable"):
        gmmdiff.sample(small_mix, n=10, T=2, progress=3)
    with pytest.raises(TypeError, match="error_factors must be the path of a factors file, a sequence"):
        gmmdiff.sample(small_mix, n=10, T=2, error_factors=3)
    with pytest.raises(TypeError, match="bias_direction must be 'random', 'means'"):
        gmmdiff.sample(small_mix, n=10, T=2, bias_direction=5)
    with pytest.raises(TypeError, match="bias_direction must be"):
        gmmdiff.bracket(small_mix, T=2, n=16, n_lower=100, bias_direction=None)
    with pytest.raises(ValueError, match=r"error_factors must be a 1-D sequence of numbers \(got 2 dimensions\)"):
        gmmdiff.sample(small_mix, n=10, T=2, error_factors=[[1.0, 1.0]])
    with pytest.raises(ValueError, match="error_factors must be an array of numbers"):
        gmmdiff.sample(small_mix, n=10, T=2, error_factors=["a", "b"])
    with pytest.raises(TypeError):
        gmmdiff.sample(small_mix, n="10")
    with pytest.raises(TypeError):
        gmmdiff.sample(small_mix, n=1e6)  # an integer is required, as for range()
    with pytest.raises(TypeError, match="schedule_file must be a path"):
        gmmdiff.sample(small_mix, schedule="file", schedule_file=3)


def test_negative_counts_are_value_errors(small_mix):
    with pytest.raises(ValueError, match=r"^--n = -5 \(need at least one particle\)$"):
        gmmdiff.sample(small_mix, n=-5)
    with pytest.raises(ValueError, match=r"^--chunk = -1 "):
        gmmdiff.sample(small_mix, chunk=-1)
    with pytest.raises(ValueError, match=r"^--reference-n = -1 "):
        gmmdiff.tv(np.zeros((10, 8)), small_mix, reference_n=-1)
    with pytest.raises(ValueError, match="schedule_file is given but schedule is 'lcw'"):
        gmmdiff.sample(small_mix, schedule_file="x.json")
    # gmmdiff.schedule checks as sample does (the same code), naming its own arguments.
    with pytest.raises(ValueError, match=r"^file is given but name is 'lcw' \(use name='file'\)$"):
        gmmdiff.schedule("lcw", file="x.json")
    with pytest.raises(TypeError, match="^file must be a path"):
        gmmdiff.schedule("file", file=3)
    with pytest.raises(ValueError, match=r"^--T = 0 \(need 1 <= T <= "):
        gmmdiff.schedule("lcw", T=0)


def test_resource_errors(tmp_path, small_mix):
    # A sample that cannot fit in host memory: refused before any allocation.
    with pytest.raises(gmmdiff.ResourceError) as e:
        gmmdiff.sample(small_mix, n=2**46, T=2)
    assert isinstance(e.value, MemoryError)
    assert "use gmmdiff.sample_chunks for bounded memory" in str(e.value)
    with pytest.raises(gmmdiff.ResourceError):  # host memory for the cpu backend's "device"
        gmmdiff.sample(small_mix, n=2**46, T=2, backend="cpu", keep_on_device=True)
    # A chunk larger than memory: the CLI's message (exit 3), up to the rows it says fit now.
    r = run_cli("sample", "--preset", "random-sphere", "--d", 8, "--K", 4, "--radius", 3, "--chunk", 2**44,
                "--out", tmp_path / "y.npy", check=False)
    assert r.rc == 3, r.err
    with pytest.raises(gmmdiff.ResourceError) as e:
        gmmdiff.sample(small_mix, chunk=2**44)
    head = "--chunk 17592186044416 does not fit in the memory of the cpu backend (at most "
    assert r.error_line().startswith(head) and str(e.value).startswith(head)
    with pytest.raises(gmmdiff.ResourceError):
        gmmdiff.sample_chunks(small_mix, chunk=2**44)


def test_numerical_error(tmp_path):
    sched = tmp_path / "sched.json"
    sched.write_text(json.dumps({"alpha": [1e-30] * 8}))
    r = run_cli("sample", "--preset", "two-point", "--sampler", "ddim", "--schedule", "file", "--schedule-file",
                sched, "--n", 300, "--out", tmp_path / "y.npy", check=False)
    assert r.rc == 2 and not (tmp_path / "y.npy").exists()
    with pytest.raises(gmmdiff.NumericalError) as e:
        gmmdiff.sample(two_point(), n=300, sampler="ddim", schedule="file", schedule_file=sched)
    assert isinstance(e.value, ArithmeticError) and not isinstance(e.value, ValueError)
    assert str(e.value) == r.error_line()
    assert str(e.value).startswith("a particle became NaN or Inf at step t = ")
