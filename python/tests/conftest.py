"""Shared fixtures of the Python package's tests (docs/python.md, "Tests").

Run by CTest (label `python`) as
    PYTHONPATH=build/python GMMDIFF_CLI=build/gmmdiff /usr/bin/python3 -m pytest python/tests
The CLI is the oracle: the same parameters and seed must give the same figures bit for bit.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import gmmdiff

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _cli_path():
    env = os.environ.get("GMMDIFF_CLI")
    if env:
        return pathlib.Path(env)
    return ROOT / "build" / "gmmdiff"


CLI = _cli_path()


class CliResult:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def error_line(self):
        """The CLI's one-line error without its 'gmmdiff: error: ' prefix."""
        lines = [l for l in self.err.splitlines() if l.startswith("gmmdiff: error: ")]
        assert len(lines) == 1, f"expected one error line, got stderr:\n{self.err}"
        return lines[0][len("gmmdiff: error: "):]


def run_cli(*args, cwd=None, check=True):
    """Runs build/gmmdiff with args (str() of each); check: exit 0 expected."""
    if not CLI.exists():
        pytest.skip(f"the gmmdiff CLI is not built at {CLI} (set GMMDIFF_CLI)")
    env = dict(os.environ)
    env.setdefault("CI", "1")  # no progress line
    proc = subprocess.run([str(CLI), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)
    r = CliResult(proc)
    if check:
        assert r.rc == 0, f"gmmdiff {' '.join(map(str, args))} exited {r.rc}:\n{r.err}"
    return r


@pytest.fixture
def cli():
    return run_cli


def load_json(path):
    with open(path) as f:
        return json.load(f)


def assert_same_bits(a, b, what=""):
    """Equal dtype, shape and bytes (NaNs included)."""
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), (
        f"{what}: values differ at {np.argwhere(a != b)[:5].tolist()}"
    )


@pytest.fixture
def small_mix():
    return gmmdiff.Mixture.preset("random-sphere", d=8, K=4, radius=3.0, seed=1)


def python_is_debian():
    return sys.executable == "/usr/bin/python3"
