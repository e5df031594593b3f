// gmmdiff: CudaEvent (cuda_event.hpp).
#include "cuda/rt/cuda_event.hpp"

#include <string>

#include "cuda/rt/cuda_error.hpp"
#include "cuda/rt/device_memory.hpp"

namespace gmmdiff::gpu {

CudaEvent::CudaEvent(bool timing) {
  CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}

namespace {
// Never throws (destructors): a failure is recorded for the next synchronisation and cleared from
// the runtime's last error (device_memory.hpp).
void destroy(cudaEvent_t e) noexcept {
  if (e == nullptr) return;
  const cudaError_t err = cudaEventDestroy(e);
  if (err != cudaSuccess) {
    take_last_error();
    record_deferred_error(std::string("cudaEventDestroy failed: ") + cudaGetErrorName(err));
  }
}
}  // namespace

CudaEvent::~CudaEvent() { destroy(event_); }

CudaEvent& CudaEvent::operator=(CudaEvent&& o) noexcept {
  if (this != &o) {
    destroy(event_);
    event_ = std::exchange(o.event_, nullptr);
  }
  return *this;
}

void CudaEvent::record(cudaStream_t stream) { CUDA_CHECK(cudaEventRecord(event_, stream)); }

void CudaEvent::synchronize() const {
  CUDA_CHECK(cudaEventSynchronize(event_));
  check_deferred_errors();
}

double CudaEvent::seconds_since(const CudaEvent& start) const {
  CUDA_CHECK(cudaEventSynchronize(event_));
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return static_cast<double>(ms) * 1e-3;
}

}  // namespace gmmdiff::gpu
