// gmmdiff: device and pinned-host allocations, the allocation limit and deferred errors
// (device_memory.hpp).
#include "cuda/rt/device_memory.hpp"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "cuda/rt/cuda_error.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::gpu {

namespace {

class RealRuntime final : public DeviceRuntime {
 public:
  cudaError_t malloc_device(void** p, std::size_t bytes) override { return cudaMalloc(p, bytes); }
  cudaError_t free_device(void* p) override { return cudaFree(p); }
  cudaError_t malloc_host(void** p, std::size_t bytes) override {
    return cudaHostAlloc(p, bytes, cudaHostAllocDefault);
  }
  cudaError_t free_host(void* p) override { return cudaFreeHost(p); }
  cudaError_t get_last_error() override { return cudaGetLastError(); }
};

RealRuntime g_real;
std::atomic<DeviceRuntime*> g_runtime{&g_real};
std::atomic<std::size_t> g_held{0};

// The limit: set by a test (g_limit_set) or read once from the environment.
std::atomic<bool> g_limit_set{false};
std::atomic<std::size_t> g_limit{kNoAllocLimit};

// More than any device holds (4 EiB): what a refusal by the limit asks the runtime for.
constexpr std::size_t kImpossibleBytes = std::size_t{1} << 62;

std::mutex g_deferred_mutex;
std::string g_deferred_first;
std::size_t g_deferred_count = 0;

std::string mib(std::size_t bytes) {
  return detail::cat(static_cast<double>(bytes) / double(1 << 20), " MiB");
}

std::string error_text(cudaError_t err) {
  return detail::cat(cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

}  // namespace

DeviceRuntime& device_runtime() { return *g_runtime.load(); }

DeviceRuntime* set_device_runtime(DeviceRuntime* r) {
  DeviceRuntime* previous = g_runtime.exchange(r != nullptr ? r : &g_real);
  return previous == &g_real ? nullptr : previous;
}

cudaError_t take_last_error() { return device_runtime().get_last_error(); }

std::size_t device_bytes_held() { return g_held.load(); }

std::size_t parse_alloc_limit(const char* text) {
  if (text == nullptr || *text == '\0') return kNoAllocLimit;
  const std::string s(text);
  std::size_t i = 0;
  unsigned long long v = 0;
  bool overflow = false;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
    const unsigned digit = static_cast<unsigned>(s[i] - '0');
    if (v > (~0ULL - digit) / 10) overflow = true;
    v = v * 10 + digit;
  }
  unsigned shift = 0;
  if (i + 1 == s.size()) {
    switch (s[i]) {
      case 'K': case 'k': shift = 10; break;
      case 'M': case 'm': shift = 20; break;
      case 'G': case 'g': shift = 30; break;
      default: shift = 64;  // not a suffix
    }
    ++i;
  }
  GMMDIFF_EXPECTS(i > 0 && i == s.size() && shift != 64 && std::isdigit(static_cast<unsigned char>(s[0])),
                  kAllocLimitEnv, " = '", s, "': expected a number of bytes, optionally with a K, M or G "
                  "suffix (e.g. 512M)");
  GMMDIFF_EXPECTS(!overflow && (shift == 0 || v <= (~0ULL >> shift)), kAllocLimitEnv, " = '", s,
                  "' does not fit in 64 bits");
  return static_cast<std::size_t>(v << shift);
}

std::size_t device_alloc_limit() {
  if (g_limit_set.load()) return g_limit.load();
  static const std::size_t from_env = parse_alloc_limit(std::getenv(kAllocLimitEnv));
  return from_env;
}

void set_device_alloc_limit(std::size_t bytes) {
  g_limit.store(bytes);
  g_limit_set.store(true);
}

void* device_allocate(std::size_t bytes, const char* what) {
  GMMDIFF_EXPECTS(bytes > 0, "cuda backend: internal: an allocation of 0 bytes for ", what);
  const std::size_t limit = device_alloc_limit();
  const std::size_t held = g_held.load();
  const bool refused = !within_alloc_limit(held, bytes, limit);
  DeviceRuntime& rt = device_runtime();
  void* p = nullptr;
  const cudaError_t err = rt.malloc_device(&p, refused ? kImpossibleBytes : bytes);
  if (err == cudaSuccess && !refused) {
    g_held.fetch_add(bytes);
    return p;
  }
  if (err == cudaSuccess) rt.free_device(p);  // an impossible request granted: give it back
  // The failure is reported by the exception below. Left in the runtime, it would be read by the
  // next CUDA_CHECK_LAUNCH and fail work that fits (a retry with smaller chunks).
  take_last_error();
  if (refused)
    throw ResourceError(detail::cat("device allocation of ", mib(bytes), " for ", what, " refused: ",
                                    kAllocLimitEnv, " = ", limit, " bytes and ", held,
                                    " are held; try a smaller --chunk or fewer particles"));
  if (err == cudaErrorMemoryAllocation)
    throw ResourceError(detail::cat("device allocation of ", mib(bytes), " for ", what, " failed: ",
                                    error_text(err), " with ", mib(held),
                                    " held by gmmdiff; try a smaller --chunk or fewer particles"));
  throw Error(detail::cat("CUDA error ", error_text(err), " allocating ", mib(bytes), " for ", what));
}

void device_free(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  const cudaError_t err = device_runtime().free_device(p);
  g_held.fetch_sub(bytes);
  if (err != cudaSuccess) {
    take_last_error();
    record_deferred_error(detail::cat("cudaFree of ", mib(bytes), " failed: ", error_text(err)));
  }
}

void* pinned_allocate(std::size_t bytes, const char* what) {
  GMMDIFF_EXPECTS(bytes > 0, "cuda backend: internal: a pinned allocation of 0 bytes for ", what);
  void* p = nullptr;
  const cudaError_t err = device_runtime().malloc_host(&p, bytes);
  if (err == cudaSuccess) return p;
  take_last_error();
  if (err == cudaErrorMemoryAllocation)
    throw ResourceError(detail::cat("pinned host allocation of ", mib(bytes), " for ", what, " failed: ",
                                    error_text(err)));
  throw Error(detail::cat("CUDA error ", error_text(err), " allocating ", mib(bytes), " of pinned host memory for ",
                          what));
}

void pinned_free(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  const cudaError_t err = device_runtime().free_host(p);
  if (err != cudaSuccess) {
    take_last_error();
    record_deferred_error(detail::cat("cudaFreeHost of ", mib(bytes), " failed: ", error_text(err)));
  }
}

void record_deferred_error(const std::string& what) noexcept {
  try {
    std::lock_guard<std::mutex> lock(g_deferred_mutex);
    if (g_deferred_count++ == 0) g_deferred_first = what;
  } catch (...) {
    // A mutex or string that cannot be had: nothing more can be done without throwing.
  }
}

std::size_t deferred_error_count() {
  std::lock_guard<std::mutex> lock(g_deferred_mutex);
  return g_deferred_count;
}

void check_deferred_errors() {
  std::string first;
  std::size_t count = 0;
  {
    std::lock_guard<std::mutex> lock(g_deferred_mutex);
    if (g_deferred_count == 0) return;
    first.swap(g_deferred_first);
    count = g_deferred_count;
    g_deferred_count = 0;
  }
  throw Error(detail::cat("cuda backend: ", first,
                          count > 1 ? detail::cat(" (and ", count - 1, " more failed releases)") : std::string(),
                          "; device memory may be corrupt, so the run stops here"));
}

void sync_stream(cudaStream_t stream) {
  CUDA_CHECK(cudaStreamSynchronize(stream));
  check_deferred_errors();
}

}  // namespace gmmdiff::gpu
