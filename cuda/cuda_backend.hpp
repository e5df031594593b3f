// gmmdiff: the CUDA backend (Backend on device 0). The chunk lives in device memory in the run's
// precision; a step is two cuBLAS products around a weights kernel, and an update kernel
// (step_kernels.hpp, gemm.hpp). Same seeds give the CPU backend's particles up to rounding:
// all per-particle arithmetic is include/gmmdiff/detail/step_math.hpp and philox.hpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/cublas_handle.hpp"
#include "cuda/cuda_stream.hpp"
#include "cuda/device_buffer.hpp"
#include "gmmdiff/backend.hpp"

namespace gmmdiff::gpu {

/// Device memory of one run in precision Real. Only the run's precision is allocated.
template <typename Real>
struct ChunkWorkspace {
  DeviceBuffer<Real> d_Y;     ///< [chunk_rows, d] the particles
  DeviceBuffer<Real> d_S1;    ///< [chunk_rows, d] W P
  DeviceBuffer<Real> d_Ysq;   ///< [chunk_rows, d] Y*Y, then W Q (Diagonal only)
  DeviceBuffer<Real> d_G;     ///< [chunk_rows, K] Y P^T, then the weights W
  DeviceBuffer<Real> d_G2;    ///< [chunk_rows, K] Ysq Q^T (Diagonal only)
  DeviceBuffer<Real> d_s2;    ///< [chunk_rows] coefficient of -y in the score (not Diagonal)
  DeviceBuffer<Real> d_P;     ///< [K, d]
  DeviceBuffer<Real> d_Q;     ///< [K, d] or [K]
  DeviceBuffer<Real> d_bias;  ///< [K]
  DeviceBuffer<Real> d_bias_dir;  ///< [d]
  std::vector<Real> h_stage;    ///< host staging for conversions from double
  void release() { *this = ChunkWorkspace{}; }
  /// Device bytes held.
  std::size_t bytes() const {
    return d_Y.bytes() + d_S1.bytes() + d_Ysq.bytes() + d_G.bytes() + d_G2.bytes() + d_s2.bytes() +
           d_P.bytes() + d_Q.bytes() + d_bias.bytes() + d_bias_dir.bytes();
  }
};

class CudaBackend final : public Backend {
 public:
  CudaBackend();  ///< device 0; throws gmmdiff::Error when it cannot be used
  ~CudaBackend() override;
  std::string name() const override { return "cuda"; }
  std::string device_name() const override { return device_name_; }
  std::size_t max_chunk_rows(const RunShape& shape) const override;
  void begin(const RunShape& shape, const Mixture& target) override;
  void init_chunk(uint64_t first, std::size_t rows) override;
  void fill_target(uint64_t first, std::size_t rows) override;
  void upload_chunk(const double* host, uint64_t first, std::size_t rows) override;
  void step(const StepCoeffs& c) override;
  void download(void* host) const override;
  uint64_t count_nonfinite_rows() const override;
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override;

  /// Device bytes a run of this shape needs per chunk row, and independently of the rows.
  static std::size_t bytes_per_row(const RunShape& shape);
  static std::size_t fixed_bytes(const RunShape& shape);

 private:
  template <typename Real> ChunkWorkspace<Real>& ws();
  template <typename Real> const ChunkWorkspace<Real>& ws() const;
  template <typename Real> void begin_impl();
  template <typename Real> void init_impl(uint64_t first, std::size_t rows);
  template <typename Real> void target_impl(uint64_t first, std::size_t rows);
  template <typename Real> void upload_impl(const double* host, std::size_t rows);
  template <typename Real> void step_impl(const StepCoeffs& c);
  template <typename Real> void download_impl(void* host) const;
  template <typename Real> uint64_t nonfinite_impl() const;
  template <typename Real> void hist_impl(const HistogramSpec& spec, HistogramCounts& counts);
  template <typename Real> void upload_converted(const std::vector<double>& src, DeviceBuffer<Real>& dst);
  void check_begun(const char* what) const;
  void check_rows(const char* what, std::size_t rows) const;

  std::string device_name_;
  CudaStream stream_;
  CublasHandle cublas_;
  bool begun_ = false;
  RunShape shape_;
  int target_K_ = 0;
  DeviceBuffer<double> d_target_means_;  ///< [K, d]
  DeviceBuffer<double> d_target_sd_;     ///< [K, d] sqrt(var(k, j))
  DeviceBuffer<double> d_target_cum_;    ///< [K] cumulative weights, cum[K-1] = 1
  ChunkWorkspace<float> ws32_;
  ChunkWorkspace<double> ws64_;
  // Histogram workspace, grown on demand and kept between calls.
  DeviceBuffer<int> d_hist_bins_;                    ///< [batch, nv]
  DeviceBuffer<unsigned long long> d_hist_counts_;   ///< [total_bins + 1]: counts, then nonfinite
  DeviceBuffer<double> d_hist_doubles_;              ///< directions, center, edges
  DeviceBuffer<int> d_hist_ints_;                    ///< edge offsets, bins, pairs, count offsets
  mutable DeviceBuffer<unsigned long long> d_scalar_;  ///< [1] count_nonfinite_rows
};

/// Device memory the histogram sub-batches may use for their bins (bounds the batch).
constexpr std::size_t kHistogramWorkspaceBytes = std::size_t{64} << 20;

}  // namespace gmmdiff::gpu
