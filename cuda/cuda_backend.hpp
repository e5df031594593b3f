// gmmdiff: the CUDA backend (Backend on device 0). The chunk lives in device memory in the run's
// precision. A step takes one of two paths (docs/cuda.md):
//   products ("cuda-gemm"): cuBLAS products around a weights kernel, and an update kernel
//            (step_kernels.hpp, gemm.hpp); for large K. Optional tensor-core modes (GemmMath).
//   fused ("cuda-fused"): one kernel per batch of steps, each particle read and written once per
//            launch, the weights never stored (fused_step.hpp); for small and moderate K.
// "auto" picks from (K, d, precision) at begin(). Same seeds give the CPU backend's particles up
// to rounding: all per-particle arithmetic is include/gmmdiff/detail/step_math.hpp and philox.hpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/rt/cublas_handle.hpp"
#include "cuda/rt/cuda_stream.hpp"
#include "cuda/rt/device_buffer.hpp"
#include "cuda/kernels/fused_lane.hpp"
#include "cuda/kernels/gemm.hpp"
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
  DeviceBuffer<Real> d_fcoeffs;   ///< [batch, FusedLayout::stride] fused steps' coefficients
  DeviceBuffer<FusedStepInfo<Real>> d_finfo;  ///< [batch] fused steps' scalars
  std::vector<Real> h_stage;    ///< host staging for conversions from double
  std::vector<Real> h_fcoeffs;  ///< host packing of d_fcoeffs
  std::vector<FusedStepInfo<Real>> h_finfo;
  void release() { *this = ChunkWorkspace{}; }
  /// Device bytes held.
  std::size_t bytes() const {
    return d_Y.bytes() + d_S1.bytes() + d_Ysq.bytes() + d_G.bytes() + d_G2.bytes() + d_s2.bytes() +
           d_P.bytes() + d_Q.bytes() + d_bias.bytes() + d_bias_dir.bytes() + d_fcoeffs.bytes() +
           d_finfo.bytes();
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
  /// Fused path: all the steps in as few launches as the coefficient batch allows
  /// (kFusedCoeffBatchBytes); products path: false (the caller steps one at a time).
  bool step_many(const StepCoeffs* steps, std::size_t count) override;
  void download(void* host) const override;
  uint64_t count_nonfinite_rows() const override;
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override;

  /// "auto", "products", "fused", or a products path with a tensor-core mode for float32 runs:
  /// "products-tf32", "products-bf16", "products-bf16x9" (float64 runs keep exact DGEMMs).
  /// Throws gmmdiff::Error for any other name, and for "fused" when the run's d exceeds
  /// kFusedMaxD (at begin() when none has begun yet).
  void set_step_path(const std::string& path) override;
  /// "cuda-fused", "cuda-gemm", or "cuda-gemm-tf32" / "-bf16" / "-bf16x9": the path of the last
  /// step (after begin(), before any step: the path the next one takes).
  std::string step_path() const override;
  void synchronize() override;
  /// Events on the backend's stream around work.
  double time_seconds(const std::function<void()>& work) override;
  /// Device-to-device cudaMemcpyAsync of max(bytes, 1 MiB), best of 5, read + write counted.
  double copy_bandwidth(std::size_t bytes) override;
  /// SMs x peak clock x FMA lanes per SM x 2 (fma_lanes_per_sm in cuda_backend.cu).
  double flop_limit(Precision p) override;

  /// Whether "auto" takes the fused path for a run of this shape (docs/cuda.md).
  static bool auto_picks_fused(const RunShape& shape);

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
  template <typename Real> void fused_impl(const StepCoeffs* steps, std::size_t count);
  template <typename Real> void download_impl(void* host) const;
  template <typename Real> uint64_t nonfinite_impl() const;
  template <typename Real> void hist_impl(const HistogramSpec& spec, HistogramCounts& counts);
  template <typename Real> void upload_converted(const std::vector<double>& src, DeviceBuffer<Real>& dst);
  void check_begun(const char* what) const;
  void check_rows(const char* what, std::size_t rows) const;
  void check_coeffs(const StepCoeffs& c) const;
  /// Sets path_ and gemm_math_ from path_request_ and shape_ (throws for an impossible request).
  void resolve_path();
  std::string path_name() const;

  enum class StepPath { Products, Fused };

  std::string device_name_;
  CudaStream stream_;
  CublasHandle cublas_;
  bool begun_ = false;
  RunShape shape_;
  std::string path_request_ = "auto";
  StepPath path_ = StepPath::Products;
  GemmMath gemm_math_ = GemmMath::Exact;
  std::string last_path_;  ///< step_path(); empty before begin()
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
/// Device memory for one batch of fused steps' coefficients (a batch is one launch).
constexpr std::size_t kFusedCoeffBatchBytes = std::size_t{16} << 20;
/// "auto" takes the fused path when the coefficients fit shared memory (fused_staged) and
/// K <= kAutoFusedMaxK or d <= kAutoFusedMaxSmallD (docs/cuda.md, "How auto chooses").
constexpr int kAutoFusedMaxK = 64;
constexpr int kAutoFusedMaxSmallD = 32;

}  // namespace gmmdiff::gpu
