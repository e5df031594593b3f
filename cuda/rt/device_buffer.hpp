// gmmdiff: move-only owners of typed allocations: DeviceBuffer (device memory) and PinnedBuffer
// (page-locked host memory, which the copy engines move at full speed and asynchronously). Both
// allocate through device_memory.hpp: a failed allocation throws ResourceError with the runtime's
// last error cleared; the destructors never throw.
#pragma once
#include <cstddef>
#include <utility>

#include "cuda/rt/device_memory.hpp"

namespace gmmdiff::gpu {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n, const char* what = "a device buffer") { resize(n, what); }
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
  /// re-size never holds both). `what` names the buffer in an out-of-memory message.
  void resize(std::size_t n, const char* what = "a device buffer") {
    if (n == size_) return;
    release();
    if (n == 0) return;
    ptr_ = static_cast<T*>(device_allocate(n * sizeof(T), what));
    size_ = n;
  }
  /// At least n elements (keeps a larger allocation).
  void reserve(std::size_t n, const char* what = "a device buffer") {
    if (n > size_) resize(n, what);
  }
  /// Frees the allocation. Never throws: this runs in destructors, where a throw would terminate
  /// the process during unwinding. A failed cudaFree is not dropped either: device_free records it
  /// and clears it from the runtime's last error, and the next synchronisation of the backend's
  /// stream (sync_stream) throws it. That is where every result is checked anyway: a failed free
  /// means the context is broken (a sticky error from an earlier kernel, which that
  /// synchronisation reports too) or a pointer was wrong (a bug in this code), and no result
  /// should be handed on after either. Frees in the backend's destructor, after its last
  /// synchronisation, are the one case with no later check; by then every result has been
  /// delivered through a checked synchronisation, so such a failure cannot change one.
  void release() noexcept {
    device_free(ptr_, size_ * sizeof(T));
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

/// Page-locked host memory of n elements (cudaHostAlloc), for staging chunk copies: a copy from or
/// to it runs at the link's speed and returns at once (cudaMemcpyAsync), where pageable memory is
/// copied through a driver buffer at a fraction of that, synchronously.
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { release(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  /// At least n elements (keeps a larger allocation; contents undefined after a growth).
  void reserve(std::size_t n, const char* what = "a pinned staging buffer") {
    if (n <= size_) return;
    release();
    ptr_ = static_cast<T*>(pinned_allocate(n * sizeof(T), what));
    size_ = n;
  }
  /// As DeviceBuffer::release: never throws, a failure is recorded for the next synchronisation.
  void release() noexcept {
    pinned_free(ptr_, size_ * sizeof(T));
    ptr_ = nullptr;
    size_ = 0;
  }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return size_; }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace gmmdiff::gpu
