// gmmdiff: every device and pinned-host allocation of the CUDA backend goes through here, so that
// the error paths are the same everywhere and can be exercised without a device:
//   - a failed allocation becomes ResourceError (exit 3) with the runtime's last error CLEARED, so
//     the next launch check does not read a stale cudaErrorMemoryAllocation and fail a retry
//     that would have fit (the smaller-chunk retry of run_sampler, bench's next configuration);
//   - a failed free is recorded, never thrown (destructors never throw), and surfaced as an Error
//     at the next synchronisation (check_deferred_errors, called by every stream sync);
//   - an allocation limit (GMMDIFF_CUDA_ALLOC_LIMIT, or set_device_alloc_limit in tests) makes
//     allocations past it fail as a real out-of-memory does (below);
//   - the runtime calls themselves go through DeviceRuntime, which a test replaces with a fake
//     (tests/cuda/test_cuda_rt.cpp) to run all of the above on a machine without a GPU.
#pragma once
#include <cstddef>
#include <string>

#include <cuda_runtime_api.h>

namespace gmmdiff::gpu {

/// The runtime calls behind device memory. The default forwards to cudaMalloc, cudaFree,
/// cudaHostAlloc, cudaFreeHost and cudaGetLastError. A fake must keep the runtime's contract: a
/// failed call records its error as the "last error", which get_last_error returns and clears.
class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  virtual cudaError_t malloc_device(void** p, std::size_t bytes) = 0;
  virtual cudaError_t free_device(void* p) = 0;
  virtual cudaError_t malloc_host(void** p, std::size_t bytes) = 0;  ///< pinned (page-locked)
  virtual cudaError_t free_host(void* p) = 0;
  virtual cudaError_t get_last_error() = 0;  ///< returns the last error and resets it to success
};

/// The runtime in use (the real one unless a test installed another).
DeviceRuntime& device_runtime();
/// Installs r (nullptr: the real runtime again); returns the one it replaces. For tests.
DeviceRuntime* set_device_runtime(DeviceRuntime* r);

/// The runtime's last error, cleared (cudaGetLastError through device_runtime()). Called after
/// every launch (CUDA_CHECK_LAUNCH) and wherever a failure has been turned into an exception or a
/// record, so that no failure is reported twice or read later by an unrelated check.
cudaError_t take_last_error();

/// bytes of device memory (bytes > 0). Throws ResourceError naming `what` and the sizes when the
/// runtime refuses (or the limit does), with the last error cleared; Error for other failures.
void* device_allocate(std::size_t bytes, const char* what);
/// Frees p (from device_allocate, of `bytes`); null is a no-op. Never throws: a failure is
/// recorded (record_deferred_error) and the last error cleared.
void device_free(void* p, std::size_t bytes) noexcept;
/// Pinned host memory, likewise (cudaHostAlloc / cudaFreeHost); the limit does not apply.
void* pinned_allocate(std::size_t bytes, const char* what);
void pinned_free(void* p, std::size_t bytes) noexcept;

/// Device bytes held through device_allocate now (all backends of the process).
std::size_t device_bytes_held();

// ---- the allocation limit (a fault injection for the out-of-memory paths) ----
/// GMMDIFF_CUDA_ALLOC_LIMIT=<bytes> (digits, optionally with a K, M or G suffix of 2^10, 2^20,
/// 2^30) makes device_allocate refuse any allocation that would bring the bytes held past it.
/// The refusal asks the runtime for an allocation no device can hold, so the runtime's own state
/// afterwards (its last error) is exactly that of a real out-of-memory: the clearing above is
/// exercised by it, not bypassed. max_chunk_rows does not see the limit (it plans from the
/// device's free memory), which is what makes the retry paths run: scripts/device.sh uses it.
constexpr const char* kAllocLimitEnv = "GMMDIFF_CUDA_ALLOC_LIMIT";
constexpr std::size_t kNoAllocLimit = static_cast<std::size_t>(-1);
/// The value of the variable as bytes (kNoAllocLimit when text is null or empty). Throws Error
/// naming the variable for anything else than digits with an optional K/M/G suffix.
std::size_t parse_alloc_limit(const char* text);
/// The limit in force: set_device_alloc_limit's, else the environment's (read once), else none.
std::size_t device_alloc_limit();
/// Sets the limit (kNoAllocLimit: none, the environment is then ignored). For tests.
void set_device_alloc_limit(std::size_t bytes);
/// Whether an allocation of `bytes` with `held` bytes held stays within `limit`.
inline bool within_alloc_limit(std::size_t held, std::size_t bytes, std::size_t limit) {
  return limit == kNoAllocLimit || (bytes <= limit && held <= limit - bytes);
}

// ---- failures that destructors cannot throw ----
/// Records a failure found where nothing may throw (a free in a destructor): the first one's text
/// is kept, later ones are counted. Thread-safe.
void record_deferred_error(const std::string& what) noexcept;
/// Throws gmmdiff::Error describing the recorded failures (and forgets them) when there are any.
/// Every synchronisation of the backend's stream calls it, so a failed free surfaces at the next
/// one instead of vanishing.
void check_deferred_errors();
/// The number of failures recorded and not yet thrown. For tests.
std::size_t deferred_error_count();

/// cudaStreamSynchronize(stream), checked, then check_deferred_errors(): the one way the backend
/// waits for its stream.
void sync_stream(cudaStream_t stream);

}  // namespace gmmdiff::gpu
