"""gmmdiff: sample Gaussian mixtures with DDPM/DDIM and the exact mixture score, measure how far
the samples are from the target in total variation, and run resumable sweeps, on the CPU or a
CUDA GPU. NumPy arrays in and out; every figure equals the `gmmdiff` CLI's for the same
parameters and seed.

    import gmmdiff
    mix = gmmdiff.Mixture.preset("random-sphere", d=64, K=16, radius=3, seed=1)
    y = gmmdiff.sample(mix, n=100_000, T=256, seed=0)          # (n, d) float32 ndarray
    r = gmmdiff.tv(y, mix, stats="means,random:8,radial")      # as `gmmdiff tv --json`
    print(r["max"]["name"], r["max"]["tv_corrected"], r["max"]["ci95"])
    b = gmmdiff.bracket(mix, T=256, sampler="ddpm")            # as `gmmdiff bracket --json`

API and examples: docs/python.md. Errors: ValueError (bad input, the CLI's one-line message),
gmmdiff.ResourceError (a MemoryError), gmmdiff.NumericalError (an ArithmeticError).
"""
import platform as _platform
import sys as _sys

from . import _build


def _wrong_interpreter(reason: str) -> ImportError:
    here = _sys.executable or "an embedded interpreter"
    return ImportError(
        f"gmmdiff: {reason}. gmmdiff was built for {_build.PYTHON_EXECUTABLE} (Python "
        f"{_build.PYTHON_VERSION}, NumPy {_build.NUMPY_VERSION}); this is {here} (Python "
        f"{_platform.python_version()}). Use that interpreter, e.g. "
        f"`{_build.PYTHON_EXECUTABLE} -c 'import gmmdiff'`, or build gmmdiff for this one "
        f"(cmake -DPython3_EXECUTABLE={here}, or `{here} -m pip install --no-build-isolation .`)"
    )


_built_for = tuple(int(x) for x in _build.PYTHON_VERSION.split(".")[:2])
if _sys.version_info[:2] != _built_for:
    raise _wrong_interpreter(f"its compiled module is for Python {_built_for[0]}.{_built_for[1]}")
try:
    import numpy as _numpy  # noqa: F401  (the module's arrays are NumPy's)
except ImportError:
    raise _wrong_interpreter("this Python cannot import NumPy") from None
try:
    from . import _core
except ImportError as _e:
    raise _wrong_interpreter(f"its compiled module does not load ({_e})") from _e

from ._core import (  # noqa: E402
    Array,
    Mixture,
    NumericalError,
    ResourceError,
    SampleChunks,
    bracket,
    build_info,
    default_sweep,
    load_results,
    report,
    sample,
    sample_chunks,
    schedule,
    sweep,
    tv,
)

__version__: str = _core.__version__

for _obj in (Array, Mixture, SampleChunks, NumericalError, ResourceError):
    _obj.__module__ = "gmmdiff"
del _obj

__all__ = [
    "Array",
    "Mixture",
    "NumericalError",
    "ResourceError",
    "SampleChunks",
    "__version__",
    "bracket",
    "build_info",
    "default_sweep",
    "load_results",
    "report",
    "sample",
    "sample_chunks",
    "schedule",
    "sweep",
    "tv",
]
