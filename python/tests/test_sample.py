"""gmmdiff.sample and gmmdiff.sample_chunks against the CLI: the same particles, bit for bit."""
import json
import re

import numpy as np
import pytest

import gmmdiff
from conftest import assert_same_bits, run_cli

DIAG_MODEL = {
    "weights": [0.3, 0.7],
    "means": [[3.0, 0.0, 1.0], [-1.0, 1.0, 0.0]],
    "var_diag": [[1.0, 0.5, 2.0], [0.25, 1.0, 1.0]],
}

# (name, CLI options, Python keyword arguments): each pair is one run; a preset's random means
# come from --model-seed (the Python preset's seed).
PRESET_CASES = [
    ("ddpm-fp32", ["--sampler", "ddpm", "--seed", 7], dict(sampler="ddpm", seed=7)),
    ("ddim-fp64-stop0", ["--sampler", "ddim", "--precision", "fp64", "--stop", 0, "--seed", 3],
     dict(sampler="ddim", precision="fp64", stop=0, seed=3)),
    ("inside-linear-means-error", ["--variance", "inside", "--schedule", "linear", "--score-error", "means",
                                   "--eps", 0.3, "--seed", 11],
     dict(variance="inside", schedule="linear", score_error="means", eps=0.3, seed=11)),
    ("posterior-liyan-bias", ["--variance", "posterior", "--schedule", "li-yan", "--c0", 1.5, "--c1", 8,
                              "--score-error", "bias", "--eps", 0.2],
     dict(variance="posterior", schedule="li-yan", c0=1.5, c1=8, score_error="bias", eps=0.2)),
    ("scale-cosine", ["--schedule", "cosine", "--score-error", "scale", "--eps", 0.1, "--eps-samples", 64],
     dict(schedule="cosine", score_error="scale", eps=0.1, eps_samples=64)),
    ("weights-error", ["--score-error", "weights", "--eps", 0.5, "--seed", 5],
     dict(score_error="weights", eps=0.5, seed=5)),
    ("ddim-song-eta", ["--sampler", "ddim-song", "--eta", 0.5, "--seed", 2], dict(sampler="ddim-song", eta=0.5, seed=2)),
    ("ddim-song-deterministic-fp64", ["--sampler", "ddim-song", "--precision", "fp64"],
     dict(sampler="ddim-song", precision="fp64")),
    ("weights-front-loaded", ["--score-error", "weights", "--eps", 0.5, "--error-profile", "front-loaded",
                              "--seed", 5],
     dict(score_error="weights", eps=0.5, error_profile="front-loaded", seed=5)),
    ("ddim-song-scale-back-loaded", ["--sampler", "ddim-song", "--eta", 1, "--score-error", "scale", "--eps", 0.1,
                                     "--error-profile", "back-loaded", "--eps-samples", 64],
     dict(sampler="ddim-song", eta=1.0, score_error="scale", eps=0.1, error_profile="back-loaded", eps_samples=64)),
    ("bias-along-the-means", ["--score-error", "bias", "--eps", 0.3, "--bias-direction", "means"],
     dict(score_error="bias", eps=0.3, bias_direction="means")),
    ("bias-along-a-vector", ["--score-error", "bias", "--eps", 0.3, "--bias-direction", "1,0,0,0,0,0,0,2"],
     dict(score_error="bias", eps=0.3, bias_direction="1,0,0,0,0,0,0,2")),
    ("gaussian-error", ["--score-error", "gaussian", "--eps", 0.2, "--seed", 9],
     dict(score_error="gaussian", eps=0.2, seed=9)),
]


def eps_jacobi_text(line):
    """The eps_Jacobi part of a run summary line (", eps_Jacobi=0.0123" or ", eps_Jacobi undefined (...)")."""
    m = re.search(r", eps_Jacobi[^,\n]*", line)
    return m.group(0) if m else None


@pytest.mark.parametrize("name,cli_args,kwargs", PRESET_CASES, ids=[c[0] for c in PRESET_CASES])
def test_preset_sample_equals_cli(tmp_path, name, cli_args, kwargs):
    out = tmp_path / "y.npy"
    r = run_cli("sample", "--preset", "random-sphere", "--d", 8, "--K", 4, "--radius", 3, "--model-seed", 1,
                "--n", 3000, "--T", 40, *cli_args, "--out", out)
    mix = gmmdiff.Mixture.preset("random-sphere", d=8, K=4, radius=3, seed=1)
    info = {}
    y = gmmdiff.sample(mix, n=3000, T=40, info=info, **kwargs)
    assert_same_bits(y, np.load(out), name)
    # The realised eps_score, as the CLI prints it.
    assert f"eps_score={info['eps_score']:.4g}" in r.err, (name, info["eps_score"], r.err)
    # eps_Jacobi, as the CLI prints it beside eps_score.
    if info["eps_jacobi_defined"]:
        assert f", eps_Jacobi={info['eps_jacobi']:.4g}" in r.err, (name, info["eps_jacobi"], r.err)
    else:
        assert info["eps_jacobi"] is None and kwargs.get("score_error") == "gaussian", (name, info)
    assert eps_jacobi_text(info["summary"]) == eps_jacobi_text(r.err) is not None, (name, info["summary"], r.err)
    assert info["n"] == 3000 and info["d"] == 8 and info["K"] == 4 and info["T"] == 40
    assert info["steps"] == 40 - kwargs.get("stop", 1)


def test_model_file_diagonal_and_schedule_file_equal_cli(tmp_path):
    model = tmp_path / "model.json"
    model.write_text(json.dumps(DIAG_MODEL))
    sched = tmp_path / "sched.json"
    alpha = [0.999 - 0.002 * t for t in range(30)]
    sched.write_text(json.dumps({"alpha": alpha}))
    out = tmp_path / "y.npy"
    run_cli("sample", "--model", model, "--n", 2000, "--schedule", "file", "--schedule-file", sched,
            "--score-error", "gaussian", "--eps", 0.5, "--seed", 2, "--out", out)
    for mixture in (str(model), model, gmmdiff.Mixture.from_json(model)):
        y = gmmdiff.sample(mixture, n=2000, schedule="file", schedule_file=sched, score_error="gaussian",
                           eps=0.5, seed=2)
        assert_same_bits(y, np.load(out), f"mixture given as {type(mixture).__name__}")


def test_snapshots_equal_cli(tmp_path, small_mix):
    out = tmp_path / "y.npy"
    run_cli("sample", "--preset", "random-sphere", "--d", 8, "--K", 4, "--radius", 3, "--model-seed", 1,
            "--n", 1000, "--T", 32, "--snapshot", "32,8,1", "--out", out)
    y, snaps = gmmdiff.sample(small_mix, n=1000, T=32, snapshot=[32, 8, 1])
    assert_same_bits(y, np.load(out), "final")
    assert sorted(snaps) == [1, 8, 32]
    for t in (32, 8, 1):
        assert_same_bits(snaps[t], np.load(tmp_path / f"y.t{t}.npy"), f"snapshot {t}")
    assert_same_bits(snaps[1], y, "Y_1 is the output")


def test_chunk_and_threads_change_no_value(small_mix):
    ref = gmmdiff.sample(small_mix, n=1500, T=24, seed=4)
    for chunk, threads in [(256, 1), (512, 2), (1500, 0), (10**6, 1)]:
        info = {}
        y = gmmdiff.sample(small_mix, n=1500, T=24, seed=4, chunk=chunk, threads=threads, info=info)
        assert_same_bits(y, ref, f"chunk={chunk} threads={threads}")
    assert info["chunks"] == 1


def test_result_owns_its_memory_without_a_copy(small_mix):
    y = gmmdiff.sample(small_mix, n=100, T=8)
    assert y.shape == (100, 8) and y.dtype == np.float32
    assert y.flags["C_CONTIGUOUS"] and y.flags["WRITEABLE"] and y.flags["ALIGNED"]
    assert not y.flags["OWNDATA"] and type(y.base).__name__ == "PyCapsule"  # the capsule frees it
    y64 = gmmdiff.sample(small_mix, n=100, T=8, precision="fp64")
    assert y64.dtype == np.float64
    v = y[10:20]
    del y
    assert np.isfinite(v).all()  # the view keeps the memory alive


def test_sample_chunks_concatenate_to_sample(small_mix):
    ref = gmmdiff.sample(small_mix, n=2000, T=24, seed=9)
    info = {}
    it = gmmdiff.sample_chunks(small_mix, n=2000, T=24, seed=9, chunk=300, info=info)
    assert it.chunk_rows == 512 and it.n == 2000 and it.d == 8
    chunks = list(it)
    assert [c.shape[0] for c in chunks] == [512, 512, 512, 464]  # 300 rounded up to a multiple of 256
    assert_same_bits(np.concatenate(chunks), ref, "chunks")
    assert info["n"] == 2000 and info["chunks"] == 4 and info["chunk_rows"] == 512
    assert it.rows_out == 2000
    with pytest.raises(StopIteration):
        next(it)


def test_sample_chunks_default_chunk_and_fp64(small_mix):
    chunks = list(gmmdiff.sample_chunks(small_mix, n=700, T=8, precision="fp64"))
    assert len(chunks) == 1 and chunks[0].dtype == np.float64
    assert_same_bits(chunks[0], gmmdiff.sample(small_mix, n=700, T=8, precision="fp64"), "one chunk")


def test_sample_chunks_stop_early(small_mix):
    it = gmmdiff.sample_chunks(small_mix, n=20000, T=16, chunk=256)
    first = next(it)
    assert first.shape == (256, 8)
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    # Leaving a loop early drops the iterator: the worker stops (no hang at exit).
    for i, _ in enumerate(gmmdiff.sample_chunks(small_mix, n=20000, T=16, chunk=256)):
        if i == 2:
            break
    with gmmdiff.sample_chunks(small_mix, n=20000, T=16, chunk=256) as it2:
        next(it2)


def test_sample_chunks_error_raised_from_iteration(tmp_path):
    # A run that diverges raises NumericalError from the loop, as sample() does.
    sched = tmp_path / "sched.json"
    sched.write_text(json.dumps({"alpha": [1e-30] * 8}))
    mix = gmmdiff.Mixture.preset("two-point", d=2)
    it = gmmdiff.sample_chunks(mix, n=300, sampler="ddim", schedule="file", schedule_file=sched)
    with pytest.raises(gmmdiff.NumericalError):
        list(it)


def test_keep_on_device_exports_dlpack_on_the_cpu(small_mix):
    ref = gmmdiff.sample(small_mix, n=500, T=16, seed=1, backend="cpu")
    a = gmmdiff.sample(small_mix, n=500, T=16, seed=1, backend="cpu", keep_on_device=True)
    assert isinstance(a, gmmdiff.Array)
    assert a.shape == (500, 8) and a.dtype == np.float32 and a.device == "cpu" and len(a) == 500
    assert a.nbytes == 500 * 8 * 4
    assert a.__dlpack_device__() == (1, 0)  # kDLCPU
    x = np.from_dlpack(a)
    assert_same_bits(x, ref, "from_dlpack")
    h = a.numpy()
    assert np.shares_memory(x, h)  # both views of the same memory, no copy
    assert_same_bits(np.asarray(a), ref, "__array__")
    del a, h
    assert_same_bits(x, ref, "the consumer keeps the memory alive")
    a64 = gmmdiff.sample(small_mix, n=50, T=4, precision="fp64", keep_on_device=True, backend="cpu")
    assert np.from_dlpack(a64).dtype == np.float64
    with pytest.raises(BufferError):
        a64.__dlpack__(dl_device=(2, 0))
    with pytest.raises(BufferError):
        a64.__dlpack__(copy=True)
    cap = a64.__dlpack__(stream=None)
    assert type(cap).__name__ == "PyCapsule"
    del cap  # an unconsumed capsule frees its tensor (the leak test counts memory)


def test_keep_on_device_with_snapshots(small_mix):
    y, snaps = gmmdiff.sample(small_mix, n=300, T=16, snapshot=[8], keep_on_device=True, backend="cpu")
    y_ref, snaps_ref = gmmdiff.sample(small_mix, n=300, T=16, snapshot=[8], backend="cpu")
    assert_same_bits(y.numpy(), y_ref, "final")
    assert_same_bits(snaps[8].numpy(), snaps_ref[8], "snapshot")


def test_progress_callback(small_mix):
    calls = []
    gmmdiff.sample(small_mix, n=40000, T=200, progress=lambda done, total: calls.append((done, total)))
    assert calls, "a run of more than 0.1 s reports progress"
    total = 40000 * 199
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total  # the last call says the run is done


def test_progress_exception_stops_the_run(small_mix):
    def boom(done, total):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        gmmdiff.sample(small_mix, n=40000, T=200, progress=boom)


def test_schedule_matches_the_cli_defaults():
    s = gmmdiff.schedule("lcw", T=100)
    assert s["name"] == "lcw" and s["T"] == 100
    a, ab, om = s["alpha"], s["abar"], s["one_minus_abar"]
    assert a.shape == (101,) and a[0] == 1 and ab[0] == 1
    np.testing.assert_allclose(np.cumprod(a[1:]), ab[1:], rtol=1e-12)
    np.testing.assert_allclose(om, 1 - ab, atol=1e-15)
    assert ab[100] == pytest.approx(100.0 ** -2, rel=1e-12)  # abar_T = T^-c0, c0 = 2 (THEORY.md)


FACTORS_T40 = [0.05 * t for t in range(1, 41)]  # f(t) grows with t: the error sits at the start


def test_error_factors_from_a_file_or_a_list_equal_cli(tmp_path, small_mix):
    ffile = tmp_path / "factors.txt"
    ffile.write_text("# one factor per step t = 1..40\n" + "\n".join(
        ", ".join(f"{f:.2f}" for f in FACTORS_T40[i:i + 8]) for i in range(0, 40, 8)) + "\n")
    out = tmp_path / "y.npy"
    r = run_cli("sample", "--preset", "random-sphere", "--d", 8, "--K", 4, "--radius", 3, "--model-seed", 1,
                "--n", 2000, "--T", 40, "--score-error", "means", "--eps", 0.3, "--error-factors", ffile, "--out", out)
    want = np.load(out)
    for f in (str(ffile), ffile, [float(f"{x:.2f}") for x in FACTORS_T40], np.array([float(f"{x:.2f}") for x in FACTORS_T40])):
        info = {}
        y = gmmdiff.sample(small_mix, n=2000, T=40, score_error="means", eps=0.3, error_factors=f, info=info)
        assert_same_bits(y, want, f"error_factors as {type(f).__name__}")
        assert eps_jacobi_text(info["summary"]) == eps_jacobi_text(r.err), (info["summary"], r.err)
    # error_profile="file" with the factors is the same run; the chunks concatenate to it.
    y = gmmdiff.sample(small_mix, n=2000, T=40, score_error="means", eps=0.3, error_profile="file",
                       error_factors=str(ffile))
    assert_same_bits(y, want, "error_profile='file'")
    info = {}
    chunks = np.concatenate(list(gmmdiff.sample_chunks(small_mix, n=2000, T=40, score_error="means", eps=0.3,
                                                        error_factors=ffile, chunk=512, info=info)))
    assert_same_bits(chunks, want, "sample_chunks with error_factors")
    assert eps_jacobi_text(info["summary"]) == eps_jacobi_text(r.err)


def test_bias_direction_as_a_list_equals_cli(tmp_path, small_mix):
    out = tmp_path / "y.npy"
    run_cli("sample", "--preset", "random-sphere", "--d", 8, "--K", 4, "--radius", 3, "--model-seed", 1,
            "--n", 1000, "--T", 24, "--score-error", "bias", "--eps", 0.5, "--bias-direction", "1,0,0,0,0,0,0,-2",
            "--sampler", "ddim-song", "--eta", 0.25, "--out", out)
    for v in ([1, 0, 0, 0, 0, 0, 0, -2], (1.0, 0, 0, 0, 0, 0, 0, -2.0), np.array([1, 0, 0, 0, 0, 0, 0, -2.0])):
        y = gmmdiff.sample(small_mix, n=1000, T=24, score_error="bias", eps=0.5, bias_direction=v,
                           sampler="ddim-song", eta=0.25)
        assert_same_bits(y, np.load(out), f"bias_direction as {type(v).__name__}")


# The CLI's options without a keyword: the model's (a Mixture or a model file is passed), the
# output file (the return value) and --quiet (nothing is printed).
CLI_ONLY = {"help", "model", "preset", "d", "K", "radius", "sd", "weights", "model-seed", "normalize-weights", "out",
            "quiet"}


def test_every_cli_option_is_a_keyword_with_its_default():
    from test_docs import normalise_default, runtime_params

    r = run_cli("sample", "--help")
    cli = {m.group(1): m.group(2) for m in
           re.finditer(r"^\s+(?:-\w,)?--([\w-]+)(?: [A-Z]+(?::[^ ]+)?(?:=(\S+))?)?", r.out, re.M)}
    assert {"eta", "error-profile", "error-factors", "bias-direction"} <= set(cli), r.out
    for fn in (gmmdiff.sample, gmmdiff.sample_chunks):
        params = runtime_params(fn)
        for name, default in cli.items():
            if name in CLI_ONLY or (name == "snapshot" and fn is gmmdiff.sample_chunks):
                continue
            kw = name.replace("-", "_")
            assert kw in params, f"sample --{name} has no keyword {kw} in {fn.__name__}"
            if default is None:
                continue
            got = normalise_default(params[kw])
            want = float(default) if isinstance(got, (int, float)) and not isinstance(got, bool) else default
            assert got == want, f"sample --{name}: CLI default {default!r}, {fn.__name__} {params[kw]!r}"
