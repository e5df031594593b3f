// gmmdiff: CublasHandle (cublas_handle.hpp).
#include "cuda/rt/cublas_handle.hpp"

#include <string>

#include "cuda/rt/cuda_error.hpp"
#include "cuda/rt/device_memory.hpp"

namespace gmmdiff::gpu {

CublasHandle::CublasHandle(cudaStream_t stream) {
  CUBLAS_CHECK(cublasCreate(&handle_));
  try {
    CUBLAS_CHECK(cublasSetStream(handle_, stream));
    CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
  } catch (...) {
    cublasDestroy(handle_);
    handle_ = nullptr;
    throw;
  }
}

namespace {
// Never throws (destructors): a failure is recorded for the next synchronisation (device_memory.hpp).
void destroy(cublasHandle_t h) noexcept {
  if (h == nullptr) return;
  const cublasStatus_t st = cublasDestroy(h);
  if (st != CUBLAS_STATUS_SUCCESS) {
    take_last_error();
    record_deferred_error(std::string("cublasDestroy failed: ") + cublasGetStatusName(st));
  }
}
}  // namespace

CublasHandle::~CublasHandle() { destroy(handle_); }

CublasHandle& CublasHandle::operator=(CublasHandle&& o) noexcept {
  if (this != &o) {
    destroy(handle_);
    handle_ = std::exchange(o.handle_, nullptr);
  }
  return *this;
}

}  // namespace gmmdiff::gpu
