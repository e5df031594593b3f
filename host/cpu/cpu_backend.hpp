// gmmdiff: the CPU backend (OpenMP over fixed blocks of kCpuBlock rows; single-threaded OpenBLAS
// for the products inside each block). A block's arithmetic depends only on its rows, so results
// are bitwise the same for any thread count and any chunk size (chunks are multiples of the block).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cpu/cpu_pool.hpp"
#include "gmmdiff/backend.hpp"

namespace gmmdiff {

constexpr std::size_t kCpuBlock = 256;

/// `auto` takes the fused path (host/cpu/cpu_fused.cpp) while P, K x d values in the run's precision,
/// is at most this size, and the BLAS path above it: the fused loops stream P (and its transpose)
/// from cache for every 4 rows, and fall behind OpenBLAS's blocked GEMMs once they spill out of
/// L2. Measured on a 2-core AMD EPYC (Zen 4, 1 MiB L2 per core; docs/bench.md, "Which path"):
/// fused ahead or even up to 1 MiB (fp32 d = 1024, K = 256: 1.17e8 vs 0.90e8 elt-steps/s), behind
/// from 2 MiB (fp64 d = 1024, K = 256: 0.45e8 vs 0.51e8).
constexpr std::size_t kFusedMaxCoeffBytes = std::size_t(1) << 20;

/// The fused path's row-parallel kernel (host/cpu/cpu_fused.cpp, rows_group): auto takes it for
/// d <= kRowsMaxD (fp32, one shared variance, AVX-512, K <= kRowsMaxK), the register tiles above.
constexpr int kRowsMaxD = 12;
constexpr int kRowsMaxK = 256;

/// An allocator whose resize() leaves new values uninitialised: a chunk's memory is first written
/// by what fills it (Y_T, an upload, the target's draws), on every thread, instead of being zeroed
/// by one thread first (15 ms for a 25.6 MB chunk). Nothing reads a row past rows().
template <typename T>
struct NoInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = NoInitAllocator<U>;
  };
  NoInitAllocator() = default;
  template <typename U>
  NoInitAllocator(const NoInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
};
template <typename T>
using ChunkValues = std::vector<T, NoInitAllocator<T>>;

/// A 64-byte-aligned scratch buffer that only grows (per-thread scratch of the fused path).
class AlignedBuffer {
 public:
  /// At least `bytes` bytes, 64-byte aligned; contents undefined after a growth.
  void* reserve(std::size_t bytes);

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> p_;
  std::size_t bytes_ = 0;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);
  std::string name() const override { return "cpu"; }
  std::string device_name() const override;
  std::size_t max_chunk_rows(const RunShape& shape) const override;
  void begin(const RunShape& shape, const Mixture& target) override;
  void init_chunk(uint64_t first, std::size_t rows) override;
  void fill_target(uint64_t first, std::size_t rows) override;
  void upload_chunk(const double* host, uint64_t first, std::size_t rows) override;
  void step(const StepCoeffs& c) override;
  void download(void* host) const override;
  /// The chunk is already host memory: consume reads it where it is, in one call (no copy).
  void stream_chunk(std::size_t row_bytes, std::vector<unsigned char>& scratch,
                    const PieceConsumer& consume) const override;
  uint64_t count_nonfinite_rows() const override;
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override;
  /// "auto" (fused while K d values fit kFusedMaxCoeffBytes, BLAS above), "products" (BLAS), "fused";
  /// "fused-rows" and "fused-tiles" force the fused path's row-parallel kernel (where it applies)
  /// or its register tiles.
  void set_step_path(const std::string& path) override;
  /// "cpu-fused-rows", "cpu-fused" or "cpu-blas": the path the last step took (before any step: the
  /// one it will take).
  std::string step_path() const override;
  double copy_bandwidth(std::size_t bytes) override;
  /// The FMA peak of the widest vector unit (cpu_peak.hpp) on all threads, measured now.
  double flop_limit(Precision p) override;
  std::string flop_unit() const override;
  /// The fused step's noise and softmax on all threads, measured now (host/cpu/cpu_fused.cpp).
  double normal_seconds(Precision p) override;
  double weight_seconds(Precision p) override;

  int threads() const { return threads_; }
  const RunShape& shape() const { return shape_; }
  /// The chunk's data in the run's precision (rows() x d).
  const float* data_f32() const { return y32_.data(); }
  const double* data_f64() const { return y64_.data(); }

 private:
  template <typename Real> void init_impl(uint64_t first, std::size_t rows);
  template <typename Real> void target_impl(uint64_t first, std::size_t rows);
  template <typename Real> void step_impl(const StepCoeffs& c);        // BLAS products (cpu-blas)
  template <typename Real> void fused_step_impl(const StepCoeffs& c);  // host/cpu/cpu_fused.cpp
  bool use_fused() const;
  bool use_rows() const;  // the fused path's row-parallel kernel (cpu_fused.cpp)
  template <typename Real> void hist_impl(const HistogramSpec& spec, HistogramCounts& counts);
  template <typename Real> ChunkValues<Real>& y();
  template <typename Real> const ChunkValues<Real>& y() const;

  int threads_;
  RunShape shape_;
  Mixture target_;
  std::vector<double> target_cum_;  // [K] cumulative weights
  ChunkValues<float> y32_;
  ChunkValues<double> y64_;
  std::string path_ = "auto";          // requested by set_step_path
  bool uniform_sd_ = false;            // isotropic with one sd for every component (set by begin)
  std::string last_path_;              // taken by the last step ("" before the first)
  std::vector<AlignedBuffer> scratch_;  // fused path: one per thread
  /// The pool of threads_ threads (made at first use): the fused step, Y_T and the non-finite count.
  CpuPool& pool() const;
  mutable std::unique_ptr<CpuPool> pool_;
};

}  // namespace gmmdiff
