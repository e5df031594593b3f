// gmmdiff: the CPU backend's thread pool (host/cpu/cpu_pool.hpp).
#include "cpu/cpu_pool.hpp"

#include <chrono>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GMMDIFF_PAUSE() _mm_pause()
#else
#define GMMDIFF_PAUSE() std::this_thread::yield()
#endif

namespace gmmdiff {

namespace {
constexpr uint32_t gen_of(uint64_t s) { return static_cast<uint32_t>(s >> 32); }
constexpr uint32_t idx_of(uint64_t s) { return static_cast<uint32_t>(s); }
}  // namespace

CpuPool::CpuPool(int threads) : threads_(threads < 1 ? 1 : threads) {
  workers_.reserve(static_cast<std::size_t>(threads_ - 1));
  for (int t = 1; t < threads_; ++t) workers_.emplace_back([this, t] { worker(t); });
}

CpuPool::~CpuPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void CpuPool::drain(uint32_t gen, int thread) {
  const Call call = call_.load(std::memory_order_acquire);
  void* const ctx = ctx_.load(std::memory_order_acquire);
  const std::size_t n = n_.load(std::memory_order_acquire);
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (gen_of(s) != gen || idx_of(s) >= n) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // Item idx_of(s) of generation gen is ours: the run cannot end before we count it done, so
    // call, ctx and n read above are that generation's.
    try {
      call(ctx, idx_of(s), thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
    s = state_.load(std::memory_order_acquire);
  }
}

void CpuPool::worker(int thread) {
  uint32_t seen = 0;  // the last generation this worker looked at
  for (;;) {
    // Spin a little for the next run (steps follow each other closely), then sleep.
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t s = state_.load(std::memory_order_acquire);
    for (int spin = 0; gen_of(s) == seen && !stop_.load(std::memory_order_relaxed); ++spin) {
      GMMDIFF_PAUSE();
      if ((spin & 63) == 63 &&
          std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(kSpinMicros)) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);  // seq_cst, against the caller's store of the state then load of this
        cv_.wait(lock, [&] { return stop_.load() || gen_of(state_.load()) != seen; });
        sleepers_.fetch_sub(1);
      }
      s = state_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = gen_of(s);
    drain(seen, thread);
  }
}

void CpuPool::run_impl(std::size_t n, Call call, void* ctx) {
  if (n == 0) return;
  if (n >= (std::size_t(1) << 32) - 1) throw std::length_error("cpu pool: " + std::to_string(n) + " items");
  if (threads_ == 1) {
    for (std::size_t i = 0; i < n; ++i) call(ctx, i, 0);
    return;
  }
  error_ = nullptr;
  call_.store(call, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  const uint32_t gen = gen_of(state_.load()) + 1;
  state_.store(static_cast<uint64_t>(gen) << 32);  // seq_cst: publishes the job
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  drain(gen, 0);
  // Every item is claimed; wait for those still running on workers.
  for (int spin = 0; done_.load(std::memory_order_acquire) < n; ++spin) {
    if (spin < 4096) GMMDIFF_PAUSE();
    else std::this_thread::yield();
  }
  if (error_) std::rethrow_exception(error_);
}

}  // namespace gmmdiff
