// gmmdiff: the host-only entry points of the CUDA backend (no CUDA types). Implemented in cuda/,
// called by host/driver/make_backend.cpp when the build has CUDA (GMMDIFF_HAVE_CUDA).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/bounds_kernels.hpp"

namespace gmmdiff::cuda_api {

/// Number of usable CUDA devices (0 without a driver or device; never throws).
int device_count();
/// A CudaBackend on device 0. Throws gmmdiff::Error("--backend cuda: no CUDA device ...") when none.
std::unique_ptr<Backend> make_cuda_backend();
/// The bounds' chunk kernels (ddpm path bound, ddim exact density) on device 0 (cuda_bounds.hpp).
/// Throws gmmdiff::Error("--backend cuda: no CUDA device ...") when none.
std::unique_ptr<BoundsKernels> make_cuda_bounds_kernels();
/// Name, memory, compute capability, SMs of each device (empty when none).
std::vector<DeviceInfo> devices();
/// e.g. "13.0 (driver 13.0)"; "runtime 13.0, no driver" when no driver is loaded.
std::string runtime_version();

}  // namespace gmmdiff::cuda_api
