// gmmdiff: launchers of the bounds' kernels (gmmdiff/bounds_kernels.hpp on the device: the ddpm
// path bound's continuations and log-weights, the ddim exact density's Jacobian determinants). All
// in double, row-major, with the per-thread and per-lane code of bounds_lane.hpp (host-compilable);
// the products around them are cuBLAS DGEMMs (gemm.hpp) and the posterior weights and the ddim
// update are the sampler's kernels (step_kernels.hpp). Every launcher checks its launch; none
// synchronises. Pointer parameters are device pointers with their shapes in the comments.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "gmmdiff/detail/bounds_math.hpp"

namespace gmmdiff::gpu {

/// A mixture laid out for detail::mixture_draw and detail::mixture_log_density_no2pi, on the device.
struct DeviceMixtureTables {
  int K = 0, d = 0;
  bool diagonal = false;
  const double* cum = nullptr;      ///< [K] cumulative weights, cum[K-1] = 1
  const double* means = nullptr;    ///< [K, d]
  const double* sd = nullptr;       ///< [K] or [K, d] (diagonal)
  const double* inv_var = nullptr;  ///< [K] or [K, d]
  const double* logc = nullptr;     ///< [K] log pi_k - 1/2 sum_j log var_kj
};

/// Per-particle scratch of the determinant, interleaved (element e of row r at e * stride + r,
/// stride = the chunk's rows): M and A [K, K] each, the vector v [K] (isotropic; v[0] keeps a for
/// the fallback), U [K, d] (diagonal).
struct FlowScratch {
  double* M = nullptr;
  double* A = nullptr;
  double* v = nullptr;
  double* U = nullptr;
  uint64_t stride = 0;
};

/// The particles whose fast route did not decide, for the fallback kernel: count (one device
/// counter), their rows, the fold flag (the largest step t at which some particle's I + kappa J
/// was not positive definite, atomicMax) and an error flag (1: a dense fallback beyond
/// detail::kMaxDenseLogDetD).
struct FlowFallback {
  unsigned int* count = nullptr;  ///< [1]
  unsigned int* rows = nullptr;   ///< [chunk rows]
  int* fold = nullptr;            ///< [1]
  int* error = nullptr;           ///< [1]
  double* dense = nullptr;        ///< [slots, d, d] (diagonal components)
  int slots = 0;
};

// ---- the path bound ----

/// Outer draws c < count of a chunk starting at outer draw `first`: row c * M of d_X [count M, d]
/// receives x_s(first + c) ~ mix, d_acc [count M] at row c * M receives -log p_s(x_s) (no 2 pi).
void launch_path_outer(double* d_X, double* d_acc, uint64_t count, int M, int d, uint64_t seed, uint64_t first,
                       const DeviceMixtureTables& mix, cudaStream_t stream);
/// Rows c * M + m (m >= 1) of d_X [count M, d] and d_acc [count M] receive row c * M's values.
void launch_path_spread(double* d_X, double* d_acc, uint64_t count, int M, int d, cudaStream_t stream);
/// The forward step t of every row: d_X [rows, d] <- sqrt_alpha X + sqrt_beta W, the normals W
/// (kStreamBoundForward, particle path_row_particle(first, r, M), step t) written to d_Z [rows, d].
void launch_path_forward(double* d_X, double* d_Z, uint64_t rows, int d, uint64_t first, int M, uint64_t seed,
                         uint32_t t, double sqrt_alpha, double sqrt_beta, cudaStream_t stream);
/// d_acc [rows] += path_step_term(terms, |w|^2, <w, e>, |e|^2), e = score_scale (S1 - S2 x) + bias_dir.
/// d_X, d_Z, d_S1: [rows, d]; d_S2: [rows, d] (diagonal) or null, then d_s2 [rows] the scalar;
/// d_bias_dir: [d] or null.
void launch_path_term(double* d_acc, const double* d_X, const double* d_Z, const double* d_S1, const double* d_S2,
                      const double* d_s2, const double* d_bias_dir, uint64_t rows, int d, double score_scale,
                      const detail::PathStepTerms& terms, cudaStream_t stream);
/// d_out [count, P] = path_prefix_log_means of each outer draw's M values d_l [count M];
/// d_prefixes [P].
void launch_path_prefix_means(const double* d_l, uint64_t count, int M, const int* d_prefixes, int P,
                              double* d_out, cudaStream_t stream);

// ---- rows ----

/// d_out [rows] = (d_base ? d_base[r] : 0) + scale |x_r|^2, d_X [rows, d] (d_out may be d_base).
void launch_row_sumsq(const double* d_X, const double* d_base, double scale, double* d_out, uint64_t rows, int d,
                      cudaStream_t stream);

// ---- the flow (ddim exact density) ----

/// One step's log det(I + kappa J) at every particle, isotropic components, fast route: where it
/// decides, d_acc [rows] -= d_log_inv_sqrt_alpha + log det; elsewhere the row joins fb's list.
/// d_W, d_G1 [rows, K]: the weights and the logits' products X P^T; d_ysq [rows]; d_Q [K];
/// d_PP [K, K].
void launch_flow_logdet_isotropic(double* d_acc, const double* d_W, const double* d_G1, const double* d_ysq,
                                  const double* d_Q, const double* d_PP, uint64_t rows, int d, int K, double kappa,
                                  double d_log_inv_sqrt_alpha, const FlowScratch& s, const FlowFallback& fb,
                                  cudaStream_t stream);
/// Diagonal components, likewise. d_W [rows, K]; d_Y, d_S1, d_S2 [rows, d]; d_P, d_Q [K, d].
void launch_flow_logdet_diagonal(double* d_acc, const double* d_W, const double* d_Y, const double* d_S1,
                                 const double* d_S2, const double* d_P, const double* d_Q, uint64_t rows, int d, int K,
                                 double kappa, double d_log_inv_sqrt_alpha, const FlowScratch& s,
                                 const FlowFallback& fb, cudaStream_t stream);
/// The listed rows (fb.count of them, read on the device: no synchronisation): the spectrum of M
/// decides (isotropic), or the dense d x d matrix (diagonal, one slot of fb.dense a thread); a row
/// that is not positive definite sets *fb.fold = max(*fb.fold, t). d_S2 [rows, d] (diagonal).
void launch_flow_fallback(double* d_acc, const double* d_S2, uint64_t rows, int d, int K, bool diagonal, double kappa,
                          double d_log_inv_sqrt_alpha, int t, const FlowScratch& s, const FlowFallback& fb,
                          cudaStream_t stream);
/// d_out [rows] = log p(y_r) - d_acc[r] (p = ref, without 2 pi, as d_acc), d_Y [rows, d].
void launch_flow_log_ratio(const double* d_Y, const double* d_acc, uint64_t rows, const DeviceMixtureTables& ref,
                           double* d_out, cudaStream_t stream);

}  // namespace gmmdiff::gpu
