// gmmdiff: the bounds' chunk kernels on device 0 (gmmdiff/bounds_kernels.hpp; docs/cuda.md, "The
// bounds on the device"). The chunk's rows (continuations of the ddpm path bound, particles of the
// ddim flow) and their running log-weights stay in device memory in double from begin to end; a
// step is cuBLAS DGEMMs for the logits' and the score's products (K x d each), the sampler's
// weights kernel and the kernels of bounds_kernels.cu; only the per-particle sums come back (a
// log R_m per outer draw and prefix, a log-density ratio per particle). The arithmetic is the CPU
// kernels' (host/bounds/bounds_cpu.cpp, the oracle), so the figures agree to rounding.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/rt/cublas_handle.hpp"
#include "cuda/rt/cuda_event.hpp"
#include "cuda/rt/cuda_stream.hpp"
#include "cuda/rt/device_buffer.hpp"
#include "gmmdiff/bounds_kernels.hpp"

namespace gmmdiff::gpu {

class CudaBoundsKernels final : public BoundsKernels {
 public:
  CudaBoundsKernels();  ///< device 0; throws gmmdiff::Error when it cannot be used
  ~CudaBoundsKernels() override;
  std::string name() const override { return "cuda"; }
  std::string device_name() const override { return device_name_; }
  /// From the device's free memory (bounds_plan.hpp: bounds_rows_for), counting what this object
  /// holds from a previous chunk as free; the largest row cost of any kind of work, since the
  /// call does not say which.
  uint64_t max_rows(int d, int K) const override;

  /// 1: a row's arithmetic does not depend on the chunk it is in (up to cuBLAS's choice of
  /// algorithm for the chunk's shape, which may round differently).
  uint64_t path_unit(int M) const override;
  void path_begin(const PathPlan& plan, uint64_t first, uint64_t count) override;
  void path_step(const PathStep& st) override;
  void path_end(double* log_rm) override;

  uint64_t flow_unit() const override { return 1; }
  void flow_begin(const FlowPlan& plan, uint64_t first, uint64_t count) override;
  void flow_step(const FlowStep& st) override;
  int flow_end(double* log_ratio) override;

  /// Device bytes this object holds.
  std::size_t bytes() const;

 private:
  /// Packs a step's coefficients (P | Q | bias | bias_dir | P P^T) into a pinned slot and queues
  /// its copy into d_coeffs_ (a slot is refilled only once its previous copy is done).
  void upload_coeffs(const StepCoeffs& c, const std::vector<double>& PP);
  void upload_tables(const Mixture& m);
  void check_step(const StepCoeffs& c, int d, int K, bool diagonal, const char* what) const;

  std::string device_name_;
  CudaStream stream_;
  CublasHandle cublas_;
  enum class Work { None, Path, Flow } work_ = Work::None;
  PathPlan path_;
  FlowPlan flow_;
  bool diagonal_ = false;
  uint64_t first_ = 0, count_ = 0, rows_ = 0;
  // the chunk (rows_ rows)
  DeviceBuffer<double> d_X_;     ///< [rows, d] continuations or particles
  DeviceBuffer<double> d_Z_;     ///< [rows, d] path: the step's forward noise
  DeviceBuffer<double> d_S1_;    ///< [rows, d] W P
  DeviceBuffer<double> d_Xsq_;   ///< [rows, d] diagonal: X*X, then S2 = W Q
  DeviceBuffer<double> d_G_;     ///< [rows, K] X P^T, then the weights
  DeviceBuffer<double> d_G1_;    ///< [rows, K] flow, isotropic: X P^T kept for the Gram
  DeviceBuffer<double> d_G2_;    ///< [rows, K] diagonal: (X*X) Q^T
  DeviceBuffer<double> d_s2_;    ///< [rows] the score's coefficient of -x (not diagonal)
  DeviceBuffer<double> d_acc_;   ///< [rows] log-weights (path) or log q (flow)
  DeviceBuffer<double> d_rsq_;   ///< [rows] flow, isotropic: |y|^2
  DeviceBuffer<double> d_out_;   ///< [count, P] (path) or [rows] (flow): what returns
  DeviceBuffer<int> d_prefixes_;  ///< [P]
  // the flow's determinant scratch (interleaved, bounds_kernels.hpp: FlowScratch) and fallback
  DeviceBuffer<double> d_M_, d_A_, d_v_, d_U_;
  DeviceBuffer<unsigned int> d_fb_rows_;  ///< [rows]
  DeviceBuffer<int> d_flags_;             ///< [3]: fallback count (as unsigned), fold, error
  DeviceBuffer<double> d_dense_;          ///< [slots, d, d] diagonal
  int dense_slots_ = 0;
  // a step's coefficients and the current mixture's tables
  DeviceBuffer<double> d_coeffs_;
  std::size_t off_Q_ = 0, off_bias_ = 0, off_bdir_ = 0, off_PP_ = 0;
  DeviceBuffer<double> d_tables_;
  std::size_t tab_cum_ = 0, tab_means_ = 0, tab_sd_ = 0, tab_inv_var_ = 0, tab_logc_ = 0;
  int tab_K_ = 0, tab_d_ = 0;
  bool tab_diagonal_ = false;
  PinnedBuffer<double> h_coeffs_[2];
  std::vector<CudaEvent> coeffs_done_;
  bool coeffs_pending_[2] = {false, false};
  int slot_ = 0;
};

}  // namespace gmmdiff::gpu
