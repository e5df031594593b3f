// gmmdiff: a move-only owner of a CUDA event (with timing unless asked otherwise). The destructor
// never throws.
#pragma once
#include <utility>

#include <cuda_runtime_api.h>

namespace gmmdiff::gpu {

class CudaEvent {
 public:
  /// cudaEventCreateWithFlags (cudaEventDisableTiming when !timing: a lighter event for ordering
  /// only); throws on failure.
  explicit CudaEvent(bool timing = true);
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  CudaEvent(CudaEvent&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
  CudaEvent& operator=(CudaEvent&& o) noexcept;

  cudaEvent_t get() const { return event_; }
  /// Records the event on stream.
  void record(cudaStream_t stream);
  /// Waits for the recorded work to complete; throws on an error it reports.
  void synchronize() const;
  /// Seconds from start's recorded completion to this one's, waiting for this one.
  double seconds_since(const CudaEvent& start) const;

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace gmmdiff::gpu
