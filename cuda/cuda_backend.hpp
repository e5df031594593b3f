// gmmdiff: the CUDA backend (Backend on device 0). The chunk lives in device memory in the run's
// precision. A step takes one of two paths (docs/cuda.md):
//   products ("cuda-gemm"): cuBLAS products around a weights kernel, and an update kernel
//            (step_kernels.hpp, gemm.hpp); for large K. Optional tensor-core modes (GemmMath).
//   fused ("cuda-fused"): one kernel per batch of steps, each particle read and written once per
//            launch, the weights never stored (fused_step.hpp); for small and moderate K.
// "auto" picks from (K, d, precision) at begin() (step_plan.hpp). Same seeds give the CPU backend's
// particles up to rounding: all per-particle arithmetic is include/gmmdiff/detail/step_math.hpp,
// philox.hpp and the lane code of cuda/kernels (fused_lane.hpp, weights_lane.hpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda/rt/cublas_handle.hpp"
#include "cuda/rt/cuda_event.hpp"
#include "cuda/rt/cuda_stream.hpp"
#include "cuda/rt/device_buffer.hpp"
#include "cuda/kernels/fused_lane.hpp"
#include "cuda/kernels/gemm.hpp"
#include "cuda/step_plan.hpp"
#include "gmmdiff/backend.hpp"

namespace gmmdiff::gpu {

/// Device memory of one run in precision Real, allocated for the run's path (step_plan.hpp,
/// chunk_cost): Y always; the products buffers on the products path; the fused coefficient batch
/// on the fused path. A path chosen after begin() allocates what it lacks at its first step.
template <typename Real>
struct ChunkWorkspace {
  DeviceBuffer<Real> d_Y;     ///< [chunk_rows, d] the particles
  // products path
  DeviceBuffer<Real> d_S1;    ///< [chunk_rows, d] W P
  DeviceBuffer<Real> d_Ysq;   ///< [chunk_rows, d] Y*Y, then W Q (Diagonal only)
  DeviceBuffer<Real> d_G;     ///< [chunk_rows, K] Y P^T, then the weights W
  DeviceBuffer<Real> d_G2;    ///< [chunk_rows, K] Ysq Q^T (Diagonal only)
  DeviceBuffer<Real> d_s2;    ///< [chunk_rows] coefficient of -y in the score (not Diagonal)
  DeviceBuffer<Real> d_P;     ///< [K, d]
  DeviceBuffer<Real> d_Q;     ///< [K, d] or [K]
  DeviceBuffer<Real> d_bias;  ///< [K]
  DeviceBuffer<Real> d_bias_dir;  ///< [d]
  // fused path
  DeviceBuffer<Real> d_fcoeffs;   ///< [batch, FusedLayout::stride] fused steps' coefficients
  DeviceBuffer<FusedStepInfo<Real>> d_finfo;  ///< [batch] fused steps' scalars
  std::vector<Real> h_fcoeffs;  ///< host packing of d_fcoeffs
  std::vector<FusedStepInfo<Real>> h_finfo;
  bool products_ready = false;  ///< the products buffers are allocated for the run's shape
  bool fused_ready = false;     ///< the fused batch is allocated
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
  /// From the device's free memory and what a chunk costs on the path this shape takes
  /// (step_plan.hpp: chunk_cost, chunk_rows_for). Memory this backend holds from a previous run
  /// counts as free (the next begin() frees it first).
  std::size_t max_chunk_rows(const RunShape& shape) const override;
  void begin(const RunShape& shape, const Mixture& target) override;
  void init_chunk(uint64_t first, std::size_t rows) override;
  void fill_target(uint64_t first, std::size_t rows) override;
  /// Through the two pinned staging buffers: the host converts one piece to the run's precision
  /// while the other is copied (docs/cuda.md, "Staging"); returns without waiting for the copies.
  void upload_chunk(const double* host, uint64_t first, std::size_t rows) override;
  void step(const StepCoeffs& c) override;
  /// Fused path: all the steps in as few launches as the coefficient batch allows
  /// (kFusedCoeffBatchBytes); products path: false (the caller steps one at a time).
  bool step_many(const StepCoeffs* steps, std::size_t count) override;
  void download(void* host) const override;
  /// Pieces of at most kStageBytes through two pinned buffers, double-buffered (stage_plan.hpp).
  void stream_chunk(std::size_t row_bytes, std::vector<unsigned char>& scratch,
                    const PieceConsumer& consume) const override;
  /// Device memory on this backend's device (cudaMalloc; ResourceError when it does not fit).
  std::unique_ptr<ResultMemory> allocate_result(std::size_t bytes) const override;
  /// Device to device into device memory (on this backend's stream, then synchronised), or a
  /// download into host memory.
  void copy_chunk_to(ResultMemory& dst, std::size_t offset) const override;
  uint64_t count_nonfinite_rows() const override;
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override;

  /// "auto", "products", "fused", or a products path with a tensor-core mode for float32 runs:
  /// "products-tf32", "products-bf16" (compute capability 8.0 and later), "products-bf16x9" (10.0
  /// and later: refused on older devices, never run as something else). Throws gmmdiff::Error for
  /// any other name, for a mode this device lacks, and for "fused" when the run's d exceeds
  /// kFusedMaxD (at begin() when none has begun yet). step_plan.hpp: resolve_step_path.
  void set_step_path(const std::string& path) override;
  /// "cuda-fused", "cuda-gemm", or "cuda-gemm-tf32" / "-bf16" / "-bf16x9": the path the last step
  /// was queued on (after begin(), before any step: the path the next one takes).
  std::string step_path() const override;
  void synchronize() override;
  /// Events on the backend's stream around work.
  double time_seconds(const std::function<void()>& work) override;
  /// Device-to-device cudaMemcpyAsync of max(bytes, 1 MiB), best of 5, read + write counted.
  double copy_bandwidth(std::size_t bytes) override;
  /// SMs x peak clock x FMA lanes per SM x 2 (fma_lanes_per_sm in cuda_backend.cu).
  double flop_limit(Precision p) override;

  /// Whether "auto" takes the fused path for a run of this shape (docs/cuda.md).
  static bool auto_picks_fused(const RunShape& shape) { return gpu::auto_picks_fused(shape); }

 private:
  template <typename Real> ChunkWorkspace<Real>& ws();
  template <typename Real> const ChunkWorkspace<Real>& ws() const;
  template <typename Real> void begin_impl();
  template <typename Real> void ensure_products(ChunkWorkspace<Real>& w);
  template <typename Real> void ensure_fused(ChunkWorkspace<Real>& w);
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
  /// The two pinned staging slots and their events, allocated at first use (kStageBytes each, or
  /// one row when a row is larger).
  void ensure_stage(std::size_t slot_bytes) const;

  std::string device_name_;
  int cc_major_ = 0, cc_minor_ = 0;
  CudaStream stream_;
  CublasHandle cublas_;
  bool begun_ = false;
  RunShape shape_;
  std::string path_request_ = "auto";
  PathChoice choice_;      ///< path_request_ resolved for shape_ (after begin())
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
  // Staging between the chunk and the host (stage_plan.hpp): two pinned slots, an event each.
  mutable PinnedBuffer<unsigned char> stage_[2];
  mutable std::vector<CudaEvent> stage_done_;
  mutable bool stage_pending_[2] = {false, false};  ///< a copy from/to the slot may be in flight
};

}  // namespace gmmdiff::gpu
