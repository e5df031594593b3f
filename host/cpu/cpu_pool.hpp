// gmmdiff: the CPU backend's thread pool for short steps (the fused path).
//
// Why not an OpenMP loop: libgomp ends each loop with a barrier that waits for every thread of the
// team, and its idle threads spin (GOMP_SPINCOUNT) before they sleep. When another process shares
// the cores, a step of a few hundred microseconds (small d) then waits for a thread the kernel has
// not scheduled, while the spinning threads of both processes take the cores from the threads that
// have work: two test processes on 2 cores slowed each other 20-40x.
//
// Here the caller runs items too, and items are claimed one at a time from an atomic counter, so
// a run ends as soon as every item is done: a worker that has not woken up holds nothing back
// (the caller does its share). Idle workers spin only briefly (kSpinMicros) and then sleep on a
// condition variable; the caller wakes them only when some sleep. Which thread runs an item never
// changes its result (the items are fixed blocks of rows).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace gmmdiff {

class CpuPool {
 public:
  /// A pool of threads - 1 workers (the caller is the last thread). threads >= 1.
  explicit CpuPool(int threads);
  ~CpuPool();
  CpuPool(const CpuPool&) = delete;
  CpuPool& operator=(const CpuPool&) = delete;

  int threads() const { return threads_; }

  /// Calls fn(item, thread) for every item in [0, n), on the caller and the workers (thread is
  /// 0 for the caller, 1..threads-1 for the workers: an index for per-thread scratch), and returns
  /// when all are done. The first exception an item throws is rethrown here (the other items
  /// still run). Not reentrant: one run at a time per pool.
  template <typename Fn>
  void run(std::size_t n, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run_impl(n, [](void* ctx, std::size_t item, int thread) { (*static_cast<F*>(ctx))(item, thread); }, &fn);
  }

  /// How long an idle worker spins before it sleeps.
  static constexpr int kSpinMicros = 50;

 private:
  using Call = void (*)(void* ctx, std::size_t item, int thread);
  void run_impl(std::size_t n, Call call, void* ctx);
  void worker(int thread);
  /// Claims and runs items of generation gen until none is left.
  void drain(uint32_t gen, int thread);

  int threads_;
  // The state: generation (high 32 bits) and next item (low 32 bits), claimed by compare-exchange
  // so that a worker still holding an old generation can never take an item of a new one.
  std::atomic<uint64_t> state_{0};
  std::atomic<Call> call_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<std::size_t> n_{0};
  std::atomic<std::size_t> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::mutex error_mu_;
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

}  // namespace gmmdiff
