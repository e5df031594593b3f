// gmmdiff: the CPU backend (OpenMP over fixed blocks of kCpuBlock rows; single-threaded OpenBLAS
// for the products inside each block). A block's arithmetic depends only on its rows, so results
// are bitwise the same for any thread count and any chunk size (chunks are multiples of the block).
#pragma once
#include <cstdint>
#include <vector>

#include "gmmdiff/backend.hpp"

namespace gmmdiff {

constexpr std::size_t kCpuBlock = 256;

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
  uint64_t count_nonfinite_rows() const override;
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override;
  std::string step_path() const override { return "cpu-blas"; }
  double copy_bandwidth(std::size_t bytes) override;
  double flop_limit(Precision p) override;

  int threads() const { return threads_; }
  const RunShape& shape() const { return shape_; }
  /// The chunk's data in the run's precision (rows() x d).
  const float* data_f32() const { return y32_.data(); }
  const double* data_f64() const { return y64_.data(); }

 private:
  template <typename Real> void init_impl(uint64_t first, std::size_t rows);
  template <typename Real> void target_impl(uint64_t first, std::size_t rows);
  template <typename Real> void step_impl(const StepCoeffs& c);
  template <typename Real> void hist_impl(const HistogramSpec& spec, HistogramCounts& counts);
  template <typename Real> std::vector<Real>& y();
  template <typename Real> const std::vector<Real>& y() const;

  int threads_;
  RunShape shape_;
  Mixture target_;
  std::vector<double> target_cum_;  // [K] cumulative weights
  std::vector<float> y32_;
  std::vector<double> y64_;
};

}  // namespace gmmdiff
