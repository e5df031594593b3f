// gmmdiff: a move-only owner of a non-blocking CUDA stream. The destructor never throws.
#pragma once
#include <utility>

#include <cuda_runtime_api.h>

namespace gmmdiff::gpu {

class CudaStream {
 public:
  CudaStream();  ///< cudaStreamCreateWithFlags(cudaStreamNonBlocking); throws on failure
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  CudaStream(CudaStream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  CudaStream& operator=(CudaStream&& o) noexcept;

  cudaStream_t get() const { return stream_; }
  /// Waits for all work on the stream; throws on an error it reports.
  void synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace gmmdiff::gpu
