// gmmdiff Python module gmmdiff._core: the bindings over the library (docs/python.md). The
// package gmmdiff (python/gmmdiff/__init__.py) re-exports what is defined here; _core.pyi beside
// it gives the signatures to editors and type checkers.
#include "common.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/version.hpp"

namespace gmmdiff::python {
namespace {

py::dict build_info() {
  py::dict d;
  d["version"] = version();
  d["commit"] = build_commit();
  d["cuda_compiled"] = cuda_compiled();
  d["cuda_runtime"] = cuda_runtime_version();
  py::list devs;
  for (const auto& x : cuda_devices()) {
    py::dict dev;
    dev["name"] = x.name;
    dev["total_bytes"] = x.total_bytes;
    dev["free_bytes"] = x.free_bytes;
    dev["compute_capability"] = py::make_tuple(x.cc_major, x.cc_minor);
    dev["sm_count"] = x.sm_count;
    devs.append(dev);
  }
  d["cuda_devices"] = devs;
  return d;
}

}  // namespace
}  // namespace gmmdiff::python

PYBIND11_MODULE(_core, m) {
  namespace gp = gmmdiff::python;
  m.doc() = "gmmdiff's compiled bindings (import gmmdiff, not this module; docs/python.md).";
  gp::register_errors(m);
  gp::init_mixture(m);
  gp::init_sample(m);
  gp::init_tv(m);
  gp::init_sweep(m);
  gp::init_bracket(m);
  m.def("build_info", &gp::build_info, R"doc(
What this build and machine offer, as `gmmdiff info`: version, commit, cuda_compiled,
cuda_runtime, and cuda_devices (name, total_bytes, free_bytes, compute_capability, sm_count).)doc");
  m.attr("__version__") = gmmdiff::version();
}
