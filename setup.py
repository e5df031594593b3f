"""Builds the gmmdiff Python package with CMake (pyproject.toml; docs/python.md, "Installing").

    pip install --no-build-isolation .         # into a venv (Debian's pip refuses the system)

The extension gmmdiff._core is built by the project's CMake build (python/CMakeLists.txt) in
build-pip/<python tag>/ and installed into the wheel's gmmdiff/ with libgmmdiff beside it
(GMMDIFF_PYTHON_BUNDLE_LIB: the module finds it through RPATH $ORIGIN). Environment:
  GMMDIFF_CMAKE_ARGS  extra CMake arguments, e.g. "-DGMMDIFF_CUDA=OFF" (default: CUDA when nvcc is found)
  CMAKE_BUILD_PARALLEL_LEVEL  build jobs (default: the CPU count)
"""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


def project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"project\(gmmdiff\s+VERSION\s+([0-9.]+)", text)
    if not m:
        raise RuntimeError("CMakeLists.txt: no project(gmmdiff VERSION x.y.z)")
    return m.group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        module_dir = pathlib.Path(self.get_ext_fullpath(ext.name)).resolve().parent  # .../gmmdiff
        prefix = module_dir.parent
        tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
        build_dir = ROOT / "build-pip" / tag
        args = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython3_EXECUTABLE={sys.executable}", "-DGMMDIFF_PYTHON=ON", "-DGMMDIFF_TESTS=OFF",
            "-DGMMDIFF_PYTHON_INSTALL_DIR=.", "-DGMMDIFF_PYTHON_BUNDLE_LIB=ON",
        ]
        if shutil.which("ninja"):
            args += ["-G", "Ninja"]
        if shutil.which("ccache"):
            args += ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", "-DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"]
        if not shutil.which("nvcc") and os.path.exists("/usr/local/cuda/bin/nvcc"):
            os.environ["PATH"] = "/usr/local/cuda/bin:" + os.environ["PATH"]
        args += shlex.split(os.environ.get("GMMDIFF_CMAKE_ARGS", ""))
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.check_call(args)
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "gmmdiff_python", "-j", jobs])
        subprocess.check_call(["cmake", "--install", str(build_dir), "--component", "python", "--prefix", str(prefix)])


setup(
    # setuptools' own staging (build/lib..., build/bdist...) beside the CMake build, not in build/.
    options={"build": {"build_base": str(ROOT / "build-pip" / "setuptools")}},
    version=project_version(),
    ext_modules=[Extension("gmmdiff._core", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
