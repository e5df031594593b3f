// gmmdiff: the one error header of the CUDA code. CUDA_CHECK / CUBLAS_CHECK throw gmmdiff::Error
// (ResourceError when the device is out of memory) naming the call, file and line;
// CUDA_CHECK_LAUNCH follows every kernel launch. A failure turned into an exception is cleared from
// the runtime's last error (take_last_error, device_memory.hpp): a caller that catches it and goes
// on (a retry with smaller chunks) must not have its next launch check fail on the old error.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda/rt/device_memory.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::gpu {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);

}  // namespace gmmdiff::gpu

#define CUDA_CHECK(call)                                                      \
  do {                                                                        \
    const cudaError_t gmmdiff_err_ = (call);                                  \
    if (gmmdiff_err_ != cudaSuccess)                                          \
      ::gmmdiff::gpu::throw_cuda_error(gmmdiff_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                    \
  do {                                                                        \
    const cublasStatus_t gmmdiff_st_ = (call);                                \
    if (gmmdiff_st_ != CUBLAS_STATUS_SUCCESS)                                 \
      ::gmmdiff::gpu::throw_cublas_error(gmmdiff_st_, #call, __FILE__, __LINE__); \
  } while (0)

/// After a kernel launch: the launch's configuration error, if any (names the kernel).
#define CUDA_CHECK_LAUNCH(kernel_name)                                        \
  do {                                                                        \
    const cudaError_t gmmdiff_err_ = ::gmmdiff::gpu::take_last_error();       \
    if (gmmdiff_err_ != cudaSuccess)                                          \
      ::gmmdiff::gpu::throw_cuda_error(gmmdiff_err_, "launch of " kernel_name, __FILE__, __LINE__); \
  } while (0)
