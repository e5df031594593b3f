"""gmmdiff.bracket against `gmmdiff bracket --json`: every figure bit for bit (ddpm's upper bound,
ddim's exact density, ddim-song's either, score-error profiles and bias directions with eps_Jacobi,
the exact reference), the CLI's messages for bad options, every CLI option as a keyword, progress
and cancellation."""
import re

import pytest

import gmmdiff
from conftest import load_json, run_cli

# Figures that are timings, not results of the computation.
TIMED = ("seconds", "rate")


def figures(d):
    return {k: v for k, v in d.items() if k not in TIMED and k != "parameters"}


def cli_bracket(tmp_path, *args):
    out = tmp_path / "bracket.json"
    run_cli("bracket", *args, "--json", out)
    return load_json(out)


def same_parameters(got, want):
    """The CLI's parameters but its model options (a Mixture is already built)."""
    for k, v in want["parameters"].items():
        if k not in ("preset", "radius", "sd"):
            assert got["parameters"][k] == v, (k, got["parameters"][k], v)


TWO_POINT_DDPM = dict(d=2, radius=2.0, sd=0.5)
DDPM_ARGS = dict(T=16, sampler="ddpm", n=512, M=8, n_lower=4000, threads=2, seed=3)


def test_ddpm_equals_cli(tmp_path):
    want = cli_bracket(tmp_path, "--preset", "two-point", "--d", 2, "--radius", 2, "--sd", 0.5, "--T", 16,
                       "--sampler", "ddpm", "--n", 512, "--M", 8, "--n-lower", 4000, "--threads", 2, "--seed", 3)
    mix = gmmdiff.Mixture.preset("two-point", seed=3, **TWO_POINT_DDPM)
    info = {}
    got = gmmdiff.bracket(mix, info=info, **DDPM_ARGS)
    assert figures(got) == figures(want)  # every float bit for bit, the checks' text too
    assert got["tv_upper"] is not None and got["tv_exact"] is None and got["tv_reference"] is not None
    assert got["consistent"] is True
    assert got["tv_lower_ci95"][0] <= got["tv_reference"] <= got["tv_upper"]
    for k, v in want["parameters"].items():
        if k not in ("preset", "radius", "sd"):  # the CLI's model options; a Mixture is already built
            assert got["parameters"][k] == v, k
    assert set(got["seconds"]) == {"lower", "upper", "exact", "reference"}
    assert "n=4000 " in info["lower"], info
    assert info["eps_score"] == got["eps_score"]


def test_ddim_equals_cli_and_the_reference_lies_in_the_exact_interval(tmp_path):
    want = cli_bracket(tmp_path, "--preset", "two-point", "--d", 3, "--radius", 2, "--sd", 1, "--T", 16,
                       "--sampler", "ddim", "--n", 4096, "--n-lower", 4000, "--threads", 2)
    mix = gmmdiff.Mixture.preset("two-point", d=3, radius=2, sd=1)
    got = gmmdiff.bracket(mix, T=16, sampler="ddim", n=4096, n_lower=4000, threads=2)
    assert figures(got) == figures(want)
    assert got["tv_upper"] is None and got["M"] is None
    lo, hi = got["tv_exact_ci95"]
    assert lo <= got["tv_reference"] <= hi, got
    assert got["parameters"]["variance"] is None


def test_model_file_and_no_reference_equal_cli(tmp_path):
    mix = gmmdiff.Mixture.preset("random-sphere", d=3, K=3, radius=3, seed=1)
    model = tmp_path / "m.json"
    mix.to_json(model)
    want = cli_bracket(tmp_path, "--model", model, "--T", 8, "--n", 256, "--M", 4, "--n-lower", 2000,
                       "--threads", 2, "--stat", "means,radial", "--bootstrap", 50, "--seed", 5)
    got = gmmdiff.bracket(str(model), T=8, n=256, M=4, n_lower=2000, threads=2, stats="means,radial",
                          bootstrap=50, seed=5)
    assert figures(got) == figures(want)
    assert got["reducible"] is False and got["tv_reference"] is None
    assert got["parameters"]["model"] == str(model) == want["parameters"]["model"]
    two = gmmdiff.Mixture.preset("two-point", d=2, radius=2, sd=0.5)
    want = cli_bracket(tmp_path, "--preset", "two-point", "--d", 2, "--radius", 2, "--sd", 0.5, "--T", 8,
                       "--n", 256, "--M", 4, "--n-lower", 2000, "--no-reference")
    got = gmmdiff.bracket(two, T=8, n=256, M=4, n_lower=2000, reference=False)
    assert figures(got) == figures(want)
    assert got["reducible"] is True and got["tv_reference"] is None


@pytest.mark.parametrize(
    "cli_args, kwargs",
    [
        (["--sampler", "ddim", "--M", 4], dict(sampler="ddim", M=4)),
        (["--sampler", "ddim", "--variance", "posterior"], dict(sampler="ddim", variance="posterior")),
        (["--n", 1], dict(n=1)),
        (["--M", 0], dict(M=0)),
        (["--stat", "nonsense"], dict(stats="nonsense")),
        (["--sampler", "ddim", "--score-error", "gaussian", "--eps", 0.1],
         dict(sampler="ddim", score_error="gaussian", eps=0.1)),
        (["--sampler", "euler"], dict(sampler="euler")),
        (["--eta", 0.5], dict(eta=0.5)),
        (["--sampler", "ddim-song", "--eta", 1.5], dict(sampler="ddim-song", eta=1.5)),
        (["--sampler", "ddim-song", "--M", 4], dict(sampler="ddim-song", M=4)),
        (["--sampler", "ddim-song", "--eta", 0.5, "--variance", "beta"],
         dict(sampler="ddim-song", eta=0.5, variance="beta")),
        (["--score-error", "scale", "--eps", 0.1, "--error-profile", "file"],
         dict(score_error="scale", eps=0.1, error_profile="file")),
        (["--score-error", "scale", "--eps", 0.1, "--error-profile", "sideways"],
         dict(score_error="scale", eps=0.1, error_profile="sideways")),
        (["--score-error", "bias", "--eps", 0.1, "--bias-direction", "1,2,3"],
         dict(score_error="bias", eps=0.1, bias_direction=[1, 2, 3])),
    ],
)
def test_bad_options_raise_the_cli_message(tmp_path, cli_args, kwargs):
    base = ["--preset", "two-point", "--d", 2, "--radius", 2, "--T", 8]
    r = run_cli("bracket", *base, *cli_args, check=False)
    assert r.rc == 2, r.err
    mix = gmmdiff.Mixture.preset("two-point", d=2, radius=2)
    with pytest.raises(ValueError) as e:
        gmmdiff.bracket(mix, T=8, **kwargs)
    assert str(e.value) == r.error_line()


def test_wrong_types_are_type_errors():
    mix = gmmdiff.Mixture.preset("two-point", d=2, radius=2)
    for kwargs in (dict(M=8.0), dict(M=True), dict(variance=1), dict(n=1.5), dict(info=[]), dict(progress=3)):
        with pytest.raises(TypeError):
            gmmdiff.bracket(mix, T=8, n=256, n_lower=1000, **kwargs)


def test_progress_sees_both_parts_and_an_exception_from_it_cancels():
    mix = gmmdiff.Mixture.preset("two-point", d=2, radius=2, sd=0.5)
    calls = []
    gmmdiff.bracket(mix, T=8, n=256, M=4, n_lower=2000, progress=lambda done, total: calls.append((done, total)))
    assert all(0 <= d <= t for d, t in calls), calls
    ends = [(d, t) for d, t in calls if d == t]
    # The end of each part: the upper bound (256 outer draws x its steps), then the sample's.
    assert len(ends) == 2, calls
    assert ends[0][1] % 256 == 0, calls

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        gmmdiff.bracket(mix, T=8, n=256, M=4, n_lower=2000, progress=stop)


def test_ddim_song_equals_cli_path_bound_and_exact_density(tmp_path):
    # The cosine schedule: lcw's first steps at T = 16 have 1 - abar_t = 0 in double, where
    # ddim-song's noise vanishes and the path bound does not apply (the CLI says so).
    base = ["--preset", "two-point", "--d", 2, "--radius", 2, "--sd", 0.5, "--schedule", "cosine", "--T", 32,
            "--n-lower", 4000, "--threads", 2, "--seed", 4]
    mix = gmmdiff.Mixture.preset("two-point", **TWO_POINT_DDPM)
    common = dict(schedule="cosine", T=32, n_lower=4000, threads=2, seed=4)
    # eta > 0: stochastic, the path bound.
    want = cli_bracket(tmp_path, *base, "--sampler", "ddim-song", "--eta", 0.5, "--n", 512, "--M", 8)
    got = gmmdiff.bracket(mix, sampler="ddim-song", eta=0.5, n=512, M=8, **common)
    assert figures(got) == figures(want)
    same_parameters(got, want)
    assert got["tv_upper"] is not None and got["tv_exact"] is None and got["M"] == 8
    assert got["parameters"]["eta"] == 0.5 and got["parameters"]["variance"] is None
    assert got["tv_lower_ci95"][0] <= got["tv_reference"] <= got["tv_upper"], got["checks"]
    # eta = 0: deterministic, the exact density.
    want = cli_bracket(tmp_path, *base, "--sampler", "ddim-song", "--n", 4096)
    got = gmmdiff.bracket(mix, sampler="ddim-song", n=4096, **common)
    assert figures(got) == figures(want)
    same_parameters(got, want)
    assert got["tv_upper"] is None and got["tv_exact"] is not None
    assert got["parameters"]["eta"] == 0.0
    # No score error: eps_Jacobi is exactly 0.
    assert (got["eps_jacobi"], got["eps_jacobi_se"], got["eps_jacobi_defined"]) == (0.0, 0.0, True)


def test_score_error_profile_and_eps_jacobi_equal_cli(tmp_path):
    """weights error, front-loaded (ddpm) and from a factors file or a list (ddim): eps_Jacobi is
    measured (a positive estimate with its standard error), every figure the CLI's."""
    mix = gmmdiff.Mixture.preset("random-sphere", d=3, K=3, radius=3, seed=1)
    model = tmp_path / "m.json"
    mix.to_json(model)
    base = ["--model", model, "--T", 12, "--n-lower", 2000, "--threads", 2, "--stat", "means,radial",
            "--bootstrap", 50, "--score-error", "weights", "--eps", 0.4, "--seed", 6]
    common = dict(T=12, n_lower=2000, threads=2, stats="means,radial", bootstrap=50, score_error="weights",
                  eps=0.4, seed=6)
    want = cli_bracket(tmp_path, *base, "--n", 256, "--M", 4, "--error-profile", "front-loaded")
    got = gmmdiff.bracket(str(model), n=256, M=4, error_profile="front-loaded", **common)
    assert figures(got) == figures(want)
    same_parameters(got, want)
    assert got["parameters"]["error_profile"] == "front-loaded"
    assert got["eps_jacobi_defined"] is True and got["eps_jacobi"] > 0 and got["eps_jacobi_se"] > 0, got
    factors = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.25, 0.0]
    ffile = tmp_path / "factors.txt"
    ffile.write_text("# f(1..12)\n" + ", ".join(map(str, factors[:6])) + "\n" + " ".join(map(str, factors[6:])) + "\n")
    want = cli_bracket(tmp_path, *base, "--sampler", "ddim", "--n", 2048, "--error-factors", ffile)
    for f in (str(ffile), ffile, factors):
        got = gmmdiff.bracket(str(model), sampler="ddim", n=2048, error_factors=f, **common)
        assert figures(got) == figures(want), type(f)
        same_parameters(got, want)
        assert got["parameters"]["error_profile"] == "file"


def test_bias_direction_and_gaussian_eps_jacobi_equal_cli(tmp_path):
    """bias along the means keeps two-point reducible (the reference exists); a direction given as a
    list is the CLI's comma-separated one; the gaussian error has no eps_Jacobi."""
    mix = gmmdiff.Mixture.preset("two-point", **TWO_POINT_DDPM)
    base = ["--preset", "two-point", "--d", 2, "--radius", 2, "--sd", 0.5, "--T", 16, "--n", 256, "--M", 4,
            "--n-lower", 2000, "--threads", 2, "--score-error", "bias", "--eps", 0.3]
    common = dict(T=16, n=256, M=4, n_lower=2000, threads=2, score_error="bias", eps=0.3)
    want = cli_bracket(tmp_path, *base, "--bias-direction", "means")
    got = gmmdiff.bracket(mix, bias_direction="means", **common)
    assert figures(got) == figures(want)
    same_parameters(got, want)
    assert got["reducible"] is True and got["tv_reference"] is not None
    assert (got["eps_jacobi"], got["eps_jacobi_defined"]) == (0.0, True)  # a constant shift: exactly 0
    want = cli_bracket(tmp_path, *base, "--bias-direction", "1,2.5")
    got = gmmdiff.bracket(mix, bias_direction="1,2.5", **common)
    assert figures(got) == figures(want)
    same_parameters(got, want)
    assert got["reducible"] is False, got["reducible_reason"]
    got_list = gmmdiff.bracket(mix, bias_direction=[1, 2.5], **common)
    assert figures(got_list) == figures(want)
    assert got_list["parameters"]["bias_direction"] == "1.0,2.5"  # the numbers as given, exactly
    want = cli_bracket(tmp_path, *base[:-4], "--score-error", "gaussian", "--eps", 0.3)
    got = gmmdiff.bracket(mix, **dict(common, score_error="gaussian"))
    assert figures(got) == figures(want)
    assert (got["eps_jacobi"], got["eps_jacobi_se"], got["eps_jacobi_defined"]) == (None, None, False)


# The CLI's options that have no keyword: the model's (a Mixture or a model file is passed) and
# the output file (the return value). Renamed: --stat is stats (as gmmdiff.tv), --no-reference is
# reference=False. None stands for the CLI's default where "given or not" matters (--variance, --M).
CLI_ONLY = {"help", "model", "preset", "d", "K", "radius", "sd", "weights", "model-seed", "normalize-weights", "json"}
RENAMED = {"stat": "stats", "no-reference": "reference"}
NONE_MEANS_DEFAULT = {"variance", "M"}


def cli_options(command):
    """(name, default or None) of each option `gmmdiff <command> --help` lists."""
    r = run_cli(command, "--help")
    opts = {}
    for m in re.finditer(r"^\s+(?:-\w,)?--([\w-]+)(?: [A-Z]+(?::[^ ]+)?(?:=(\S+))?)?", r.out, re.M):
        opts[m.group(1)] = m.group(2)
    assert len(opts) > 10, r.out
    return opts


def test_every_cli_option_is_a_keyword_with_its_default():
    from test_docs import normalise_default, runtime_params

    params = runtime_params(gmmdiff.bracket)
    for name, default in cli_options("bracket").items():
        if name in CLI_ONLY:
            continue
        kw = RENAMED.get(name, name.replace("-", "_"))
        assert kw in params, f"bracket --{name} has no keyword {kw}"
        if default is None or name in NONE_MEANS_DEFAULT:
            continue
        got = normalise_default(params[kw])
        want = float(default) if isinstance(got, (int, float)) and not isinstance(got, bool) else default
        assert got == want, f"bracket --{name}: CLI default {default!r}, Python {params[kw]!r}"
