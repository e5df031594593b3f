// gmmdiff: CudaEvent (cuda_event.hpp).
#include "cuda/rt/cuda_event.hpp"

#include "cuda/rt/cuda_error.hpp"

namespace gmmdiff::gpu {

CudaEvent::CudaEvent() { CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDefault)); }

CudaEvent::~CudaEvent() {
  if (event_ != nullptr) cudaEventDestroy(event_);  // error ignored: never throws
}

CudaEvent& CudaEvent::operator=(CudaEvent&& o) noexcept {
  if (this != &o) {
    if (event_ != nullptr) cudaEventDestroy(event_);
    event_ = std::exchange(o.event_, nullptr);
  }
  return *this;
}

void CudaEvent::record(cudaStream_t stream) { CUDA_CHECK(cudaEventRecord(event_, stream)); }

double CudaEvent::seconds_since(const CudaEvent& start) const {
  CUDA_CHECK(cudaEventSynchronize(event_));
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return static_cast<double>(ms) * 1e-3;
}

}  // namespace gmmdiff::gpu
