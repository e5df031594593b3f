// gmmdiff: a move-only owner of a typed device allocation (cudaMalloc / cudaFree).
// The destructor never throws; allocation failures throw ResourceError (cuda_error.hpp).
#pragma once
#include <cstddef>
#include <utility>

#include <cuda_runtime_api.h>

#include "cuda/rt/cuda_error.hpp"

namespace gmmdiff::gpu {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }

  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  /// Exactly n elements, contents undefined (the old allocation is freed first, so that a
  /// re-size never holds both).
  void resize(std::size_t n) {
    if (n == size_) return;
    release();
    if (n == 0) return;
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
    ptr_ = static_cast<T*>(p);
    size_ = n;
  }
  /// At least n elements (keeps a larger allocation).
  void reserve(std::size_t n) {
    if (n > size_) resize(n);
  }
  void release() noexcept {
    if (ptr_ != nullptr) cudaFree(ptr_);  // error ignored: destructors never throw
    ptr_ = nullptr;
    size_ = 0;
  }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return size_ * sizeof(T); }
  bool empty() const { return size_ == 0; }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace gmmdiff::gpu
