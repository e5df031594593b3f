"""gmmdiff.sweep and gmmdiff.report against `gmmdiff sweep` and `gmmdiff report`."""
import json

import pytest

import gmmdiff
from conftest import load_json, run_cli

SPEC = {
    "name": "pytiny",
    "family": ["two-point", "random-sphere"], "d": [2, 4], "radius": 2, "T": [4, 16], "n": 2000,
    "backend": "cpu", "tv": {"stats": "means,radial", "bootstrap": 20},
}
TIMING = {"seconds", "eps_seconds", "wall_seconds", "elt_steps_per_s", "finished_at"}


def strip(row):
    return {k: v for k, v in row.items() if k not in TIMING}


def test_rows_and_report_equal_cli(tmp_path):
    spec_file = tmp_path / "pytiny.json"
    spec_file.write_text(json.dumps(SPEC))
    run_cli("sweep", spec_file, "--out", tmp_path / "cli", "--no-plots")
    cli_rows = [json.loads(l) for l in (tmp_path / "cli" / "results.jsonl").read_text().splitlines()]
    seen = []
    info = {}
    rows = gmmdiff.sweep(spec_file, out=tmp_path / "py", info=info,
                         on_row=lambda row, i, total: seen.append((row["key"], i, total)))
    assert len(rows) == 8 and info["total"] == 8 and info["ran"] == 8 and info["done_before"] == 0
    assert [strip(r) for r in rows] == [strip(r) for r in cli_rows]
    assert seen == [(r["key"], i + 1, 8) for i, r in enumerate(rows)]
    assert info["report"] == str(tmp_path / "py" / "report.md")
    cli_report = load_json(tmp_path / "cli" / "report.json")
    py_report = gmmdiff.report(tmp_path / "py")
    assert py_report == load_json(tmp_path / "py" / "report.json")
    assert json.dumps(py_report, sort_keys=True) == json.dumps(cli_report, sort_keys=True)
    # Done: a second call runs nothing and returns the same rows.
    again = gmmdiff.sweep(spec_file, out=tmp_path / "py", report=False, info=info)
    assert info["ran"] == 0 and info["done_before"] == 8 and again == rows
    assert gmmdiff.load_results(tmp_path / "py") == rows


def test_dict_spec_equals_file_spec(tmp_path):
    rows = gmmdiff.sweep(SPEC, out=tmp_path / "d", report=False)
    f = tmp_path / "pytiny.json"
    f.write_text(json.dumps(SPEC))
    assert [strip(r) for r in gmmdiff.sweep(f, out=tmp_path / "f", report=False)] == [strip(r) for r in rows]


def test_default_sweep_is_the_cli_default():
    r = run_cli("sweep", "--print-default", "--backend", "cpu")
    assert gmmdiff.default_sweep("cpu") == json.loads(r.out)


def test_sweep_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^--backend \"tpu\" \(allowed: auto, cpu, cuda\)$"):
        gmmdiff.sweep(backend="tpu")
    f = tmp_path / "s.json"
    f.write_text(json.dumps(SPEC))
    with pytest.raises(ValueError, match="applies to the embedded default"):
        gmmdiff.sweep(f, backend="cpu")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(SPEC, T=0)))
    r = run_cli("sweep", bad, "--out", tmp_path / "bad_cli", check=False)
    assert r.rc == 2
    with pytest.raises(ValueError) as e:
        gmmdiff.sweep(bad, out=tmp_path / "bad_py")
    assert str(e.value) == r.error_line()
    other = dict(SPEC, name="other", n=1000)
    gmmdiff.sweep(SPEC, out=tmp_path / "same", report=False)
    with pytest.raises(ValueError, match="holds a different sweep"):
        gmmdiff.sweep(other, out=tmp_path / "same")
    with pytest.raises(ValueError, match="no such directory"):
        gmmdiff.report(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"--level must lie in \(0, 1\)"):
        gmmdiff.report(tmp_path / "same", level=2)


def test_two_sweeps_on_one_directory(tmp_path):
    import threading

    spec = dict(SPEC, name="long", family="two-point", d=2, T=600, n=20000)
    errors = []
    started = threading.Event()

    def first():
        try:
            gmmdiff.sweep(spec, out=tmp_path / "x", report=False, progress=lambda d, t: started.set())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    th = threading.Thread(target=first)
    th.start()
    assert started.wait(60), "the first sweep started"
    with pytest.raises(ValueError, match="another gmmdiff sweep is writing"):
        gmmdiff.sweep(spec, out=tmp_path / "x", report=False)
    th.join()
    assert not errors and len(gmmdiff.load_results(tmp_path / "x")) == 1
