// gmmdiff: CudaStream (cuda_stream.hpp).
#include "cuda/rt/cuda_stream.hpp"

#include <string>

#include "cuda/rt/cuda_error.hpp"
#include "cuda/rt/device_memory.hpp"

namespace gmmdiff::gpu {

CudaStream::CudaStream() { CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }

namespace {
// Never throws (destructors): a failure is recorded for the next synchronisation and cleared from
// the runtime's last error (device_memory.hpp).
void destroy(cudaStream_t s) noexcept {
  if (s == nullptr) return;
  const cudaError_t err = cudaStreamDestroy(s);
  if (err != cudaSuccess) {
    take_last_error();
    record_deferred_error(std::string("cudaStreamDestroy failed: ") + cudaGetErrorName(err));
  }
}
}  // namespace

CudaStream::~CudaStream() { destroy(stream_); }

CudaStream& CudaStream::operator=(CudaStream&& o) noexcept {
  if (this != &o) {
    destroy(stream_);
    stream_ = std::exchange(o.stream_, nullptr);
  }
  return *this;
}

void CudaStream::synchronize() const { sync_stream(stream_); }

}  // namespace gmmdiff::gpu
