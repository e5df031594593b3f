// gmmdiff: the host-only entry points of the CUDA backend (cuda_api.hpp).
#include "cuda/cuda_api.hpp"

#include <cuda_runtime_api.h>

#include "cuda/cuda_backend.hpp"
#include "cuda/cuda_bounds.hpp"
#include "cuda/rt/device_memory.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::cuda_api {

namespace {

std::string version_string(int v) {  // 13000 -> "13.0"
  return detail::cat(v / 1000, ".", (v % 1000) / 10);
}

}  // namespace

int device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    gpu::take_last_error();  // clear the (non-sticky) error so later calls start clean
    return 0;
  }
  return n < 0 ? 0 : n;
}

namespace {

/// Throws the "no CUDA device" error when there is none (the reason named), else returns.
void require_device() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n <= 0) {
    int driver = 0;
    const bool no_driver = cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0;
    const std::string why = no_driver               ? std::string("no CUDA driver is loaded")
                            : err != cudaSuccess    ? std::string(cudaGetErrorString(err))
                                                    : std::string("the driver reports no device");
    gpu::take_last_error();
    throw Error("--backend cuda: no CUDA device is available (" + why +
                "); use --backend cpu or --backend auto");
  }
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  require_device();
  return std::make_unique<gpu::CudaBackend>();
}

std::unique_ptr<BoundsKernels> make_cuda_bounds_kernels() {
  require_device();
  return std::make_unique<gpu::CudaBoundsKernels>();
}

std::vector<DeviceInfo> devices() {
  std::vector<DeviceInfo> out;
  const int n = device_count();
  if (n == 0) return out;
  int previous = 0;
  const bool restore = cudaGetDevice(&previous) == cudaSuccess;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      gpu::take_last_error();
      continue;
    }
    DeviceInfo info;
    info.name = prop.name;
    info.total_bytes = prop.totalGlobalMem;
    info.cc_major = prop.major;
    info.cc_minor = prop.minor;
    info.sm_count = prop.multiProcessorCount;
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      info.free_bytes = free_bytes;
      info.total_bytes = total_bytes;
    } else {
      gpu::take_last_error();
    }
    out.push_back(std::move(info));
  }
  if (restore && cudaSetDevice(previous) != cudaSuccess) gpu::take_last_error();
  return out;
}

std::string runtime_version() {
  int runtime = 0, driver = 0;
  if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) {
    gpu::take_last_error();  // else the next launch check of a backend would report it
    runtime = CUDART_VERSION;
  }
  if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
    gpu::take_last_error();
    return "runtime " + version_string(runtime) + ", no driver";
  }
  return version_string(runtime) + " (driver " + version_string(driver) + ")";
}

}  // namespace gmmdiff::cuda_api
