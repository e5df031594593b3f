// gmmdiff: choosing a backend (cpu, cuda, auto), and what the build and machine offer.
#include "gmmdiff/backend.hpp"

#include "cpu/cpu_backend.hpp"
#include "gmmdiff/error.hpp"
#if defined(GMMDIFF_HAVE_CUDA)
#include "cuda/cuda_api.hpp"
#endif

namespace gmmdiff {

namespace {
/// More CPU threads than this is a typo (OpenMP would try to start them all).
constexpr int kMaxThreads = 4096;
}  // namespace

bool cuda_compiled() {
#if defined(GMMDIFF_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

std::vector<DeviceInfo> cuda_devices() {
#if defined(GMMDIFF_HAVE_CUDA)
  return cuda_api::devices();
#else
  return {};
#endif
}

std::string cuda_runtime_version() {
#if defined(GMMDIFF_HAVE_CUDA)
  return cuda_api::runtime_version();
#else
  return "";
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
  GMMDIFF_EXPECTS(threads >= 0 && threads <= kMaxThreads, "--threads = ", threads, " (need 0 <= threads <= ",
                  kMaxThreads, "; 0 means all cores)");
  if (name == "cpu") return std::make_unique<CpuBackend>(threads);
  if (name == "cuda" || name == "auto") {
#if defined(GMMDIFF_HAVE_CUDA)
    if (cuda_api::device_count() > 0) return cuda_api::make_cuda_backend();
    GMMDIFF_EXPECTS(name == "auto", "--backend cuda: no CUDA device is available on this machine "
                                    "(use --backend cpu or auto)");
#else
    GMMDIFF_EXPECTS(name == "auto", "--backend cuda: this build of gmmdiff has no CUDA backend "
                                    "(rebuild with nvcc available, or use --backend cpu)");
#endif
    return std::make_unique<CpuBackend>(threads);
  }
  throw Error("unknown backend '" + name + "' (allowed: cpu, cuda, auto)");
}

}  // namespace gmmdiff
