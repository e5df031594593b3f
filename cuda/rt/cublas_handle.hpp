// gmmdiff: a move-only owner of a cuBLAS handle, bound to a stream, in full-precision math
// (CUBLAS_DEFAULT_MATH: no TF32, so float GEMMs round like the CPU's). Never throws on destroy.
#pragma once
#include <utility>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace gmmdiff::gpu {

class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream);  ///< throws on failure
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  CublasHandle(CublasHandle&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  CublasHandle& operator=(CublasHandle&& o) noexcept;

  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace gmmdiff::gpu
