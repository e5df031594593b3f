"""gmmdiff.bracket against `gmmdiff bracket --json`: every figure bit for bit (ddpm's upper bound,
ddim's exact density, the exact reference), the CLI's messages for bad options, progress and
cancellation."""
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
