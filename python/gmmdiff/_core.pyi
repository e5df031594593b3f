# Type stubs of gmmdiff._core, the compiled bindings (python/src/*.cpp). Keep in step with the
# bindings: python/tests/test_stubs.py checks that every name and keyword argument here exists
# there with the same defaults.
import os
from typing import Any, Callable, Dict, Iterator, List, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_ArrayLike = npt.ArrayLike
_Progress = Optional[Callable[[int, int], Any]]

class ResourceError(MemoryError): ...
class NumericalError(ArithmeticError): ...

class Mixture:
    def __init__(
        self,
        means: _ArrayLike,
        weights: Optional[_ArrayLike] = None,
        sd: Optional[_ArrayLike] = None,
        var_diag: Optional[_ArrayLike] = None,
        *,
        normalize_weights: bool = False,
    ) -> None: ...
    @staticmethod
    def preset(
        name: str,
        *,
        d: int = 2,
        K: int = 0,
        radius: float = 2.0,
        sd: _ArrayLike = 1.0,
        weights: Optional[_ArrayLike] = None,
        seed: int = 0,
        normalize_weights: bool = False,
    ) -> Mixture: ...
    @staticmethod
    def from_json(path: _Path, *, normalize_weights: bool = False) -> Mixture: ...
    def to_json(self, path: _Path) -> None: ...
    @property
    def K(self) -> int: ...
    @property
    def d(self) -> int: ...
    @property
    def covariance(self) -> Literal["isotropic", "diagonal"]: ...
    @property
    def weights(self) -> npt.NDArray[np.float64]: ...
    @property
    def means(self) -> npt.NDArray[np.float64]: ...
    @property
    def sd(self) -> Optional[npt.NDArray[np.float64]]: ...
    @property
    def var_diag(self) -> Optional[npt.NDArray[np.float64]]: ...
    def log_density(self, x: _ArrayLike) -> Union[float, npt.NDArray[np.float64]]: ...
    def score(self, x: _ArrayLike, abar: float = 1.0) -> npt.NDArray[np.float64]: ...
    def forward_marginal(self, abar: float) -> Mixture: ...
    def __eq__(self, other: object) -> bool: ...

_MixtureArg = Union[Mixture, _Path]

class Array:
    @property
    def shape(self) -> Tuple[int, int]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def device(self) -> str: ...
    def __len__(self) -> int: ...
    def __dlpack_device__(self) -> Tuple[int, int]: ...
    def __dlpack__(
        self,
        *,
        stream: Optional[int] = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Optional[Tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any: ...
    def numpy(self) -> npt.NDArray[Any]: ...
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> npt.NDArray[Any]: ...

class SampleChunks(Iterator[npt.NDArray[Any]]):
    def __iter__(self) -> SampleChunks: ...
    def __next__(self) -> npt.NDArray[Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> SampleChunks: ...
    def __exit__(self, *args: Any) -> None: ...
    @property
    def n(self) -> int: ...
    @property
    def d(self) -> int: ...
    @property
    def chunk_rows(self) -> int: ...
    @property
    def rows_out(self) -> int: ...

@overload
def sample(
    mixture: _MixtureArg,
    *,
    n: int = 1000,
    T: int = 1000,
    sampler: str = "ddpm",
    eta: float = 0.0,
    variance: str = "beta",
    stop: int = 1,
    seed: int = 0,
    precision: str = "fp32",
    chunk: int = 0,
    score_error: str = "none",
    eps: float = 0.0,
    error_profile: str = "uniform",
    error_factors: Union[None, _Path, Sequence[float], npt.NDArray[Any]] = None,
    bias_direction: Union[str, Sequence[float], npt.NDArray[Any]] = "random",
    eps_samples: int = 1024,
    backend: str = "auto",
    threads: int = 0,
    schedule: str = "lcw",
    c0: float = 2.0,
    c1: float = 10.0,
    schedule_file: Optional[_Path] = None,
    schedule_kind: str = "auto",
    snapshot: Sequence[int] = (),
    info: Optional[Dict[str, Any]] = None,
    progress: _Progress = None,
    keep_on_device: Literal[False] = False,
) -> Union[npt.NDArray[Any], Tuple[npt.NDArray[Any], Dict[int, npt.NDArray[Any]]]]: ...
@overload
def sample(
    mixture: _MixtureArg,
    *,
    n: int = 1000,
    T: int = 1000,
    sampler: str = "ddpm",
    eta: float = 0.0,
    variance: str = "beta",
    stop: int = 1,
    seed: int = 0,
    precision: str = "fp32",
    chunk: int = 0,
    score_error: str = "none",
    eps: float = 0.0,
    error_profile: str = "uniform",
    error_factors: Union[None, _Path, Sequence[float], npt.NDArray[Any]] = None,
    bias_direction: Union[str, Sequence[float], npt.NDArray[Any]] = "random",
    eps_samples: int = 1024,
    backend: str = "auto",
    threads: int = 0,
    schedule: str = "lcw",
    c0: float = 2.0,
    c1: float = 10.0,
    schedule_file: Optional[_Path] = None,
    schedule_kind: str = "auto",
    snapshot: Sequence[int] = (),
    info: Optional[Dict[str, Any]] = None,
    progress: _Progress = None,
    keep_on_device: Literal[True],
) -> Union[Array, Tuple[Array, Dict[int, Array]]]: ...
def sample_chunks(
    mixture: _MixtureArg,
    *,
    n: int = 1000,
    T: int = 1000,
    sampler: str = "ddpm",
    eta: float = 0.0,
    variance: str = "beta",
    stop: int = 1,
    seed: int = 0,
    precision: str = "fp32",
    chunk: int = 0,
    score_error: str = "none",
    eps: float = 0.0,
    error_profile: str = "uniform",
    error_factors: Union[None, _Path, Sequence[float], npt.NDArray[Any]] = None,
    bias_direction: Union[str, Sequence[float], npt.NDArray[Any]] = "random",
    eps_samples: int = 1024,
    backend: str = "auto",
    threads: int = 0,
    schedule: str = "lcw",
    c0: float = 2.0,
    c1: float = 10.0,
    schedule_file: Optional[_Path] = None,
    schedule_kind: str = "auto",
    info: Optional[Dict[str, Any]] = None,
) -> SampleChunks: ...
def schedule(
    name: str = "lcw",
    *,
    T: int = 1000,
    c0: float = 2.0,
    c1: float = 10.0,
    file: Optional[_Path] = None,
    kind: str = "auto",
) -> Dict[str, Any]: ...
def tv(
    sample: Union[_ArrayLike, _Path],
    mixture: _MixtureArg,
    *,
    stats: str = "means,meansperp,random:8,radial,logp",
    bins: int = 0,
    bootstrap: int = 200,
    seed: int = 0,
    reference_n: int = 0,
    backend: str = "auto",
    threads: int = 0,
    chunk: int = 0,
) -> Dict[str, Any]: ...
def bracket(
    mixture: _MixtureArg,
    *,
    T: int = 1000,
    sampler: str = "ddpm",
    variance: Optional[str] = None,
    stop: int = 1,
    seed: int = 0,
    score_error: str = "none",
    eps: float = 0.0,
    eta: float = 0.0,
    error_profile: str = "uniform",
    error_factors: Union[None, _Path, Sequence[float], npt.NDArray[Any]] = None,
    bias_direction: Union[str, Sequence[float], npt.NDArray[Any]] = "random",
    n: int = 0,
    M: Optional[int] = None,
    n_lower: int = 65536,
    precision: str = "fp32",
    backend: str = "auto",
    threads: int = 0,
    chunk: int = 0,
    stats: str = "means,meansperp,random:8,radial,logp",
    bins: int = 0,
    bootstrap: int = 200,
    reference: bool = True,
    schedule: str = "lcw",
    c0: float = 2.0,
    c1: float = 10.0,
    schedule_file: Optional[_Path] = None,
    schedule_kind: str = "auto",
    info: Optional[Dict[str, Any]] = None,
    progress: _Progress = None,
) -> Dict[str, Any]: ...
def sweep(
    spec: Union[None, _Path, Dict[str, Any]] = None,
    *,
    out: Optional[_Path] = None,
    backend: Optional[str] = None,
    threads: int = 0,
    report: bool = True,
    on_row: Optional[Callable[[Dict[str, Any], int, int], Any]] = None,
    progress: _Progress = None,
    info: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]: ...
def report(dir: _Path, *, level: float = 0.95, growth_tol: float = 0.25) -> Dict[str, Any]: ...
def load_results(dir: _Path) -> List[Dict[str, Any]]: ...
def default_sweep(backend: str = "cpu") -> Dict[str, Any]: ...
def build_info() -> Dict[str, Any]: ...
