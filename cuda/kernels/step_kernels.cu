// gmmdiff: the per-particle kernels of the products path and of filling a chunk
// (step_kernels.hpp). One thread per (row, block of 4 coordinates) where Philox normals are drawn
// (one Philox call gives the 4 normals of a block): initial noise, target samples, the update. The
// weights kernel gives each row a group of lanes (weights_lane.hpp: an online log-sum-exp, one
// read of the row and one read-write, coalesced). The fused path (fused_step.cu) does a whole step
// per particle in one kernel instead; these kernels and cuBLAS are the path for large K.
#include "cuda/kernels/step_kernels.hpp"

#include "cuda/rt/cuda_error.hpp"
#include "cuda/kernels/launch_config.hpp"
#include "cuda/kernels/weights_lane.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"

namespace gmmdiff::gpu {

namespace {

using detail::QMode;
using detail::StepScalars;

template <typename Real>
__global__ void init_normal_kernel(Real* __restrict__ Y,  // [rows, d]
                                   std::size_t rows, int d, uint64_t seed, uint64_t first) {
  const int nb = (d + 3) / 4;
  const std::size_t n = rows * static_cast<std::size_t>(nb);
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / nb;
    const int b = static_cast<int>(idx % nb);
    Real z[4];
    detail::philox_normal4<Real>(seed, kStreamInit, first + i, 0u, static_cast<uint32_t>(b), z);
    Real* y = Y + i * d;
    for (int q = 0; q < 4; ++q) {
      const int j = 4 * b + q;
      if (j < d) y[j] = z[q];
    }
  }
}

template <typename Real>
__global__ void fill_target_kernel(Real* __restrict__ Y,              // [rows, d]
                                   const double* __restrict__ means,  // [K, d]
                                   const double* __restrict__ sd,     // [K, d]
                                   const double* __restrict__ cum,    // [K]
                                   std::size_t rows, int d, int K, uint64_t seed, uint64_t first) {
  const int nb = (d + 3) / 4;
  const std::size_t n = rows * static_cast<std::size_t>(nb);
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / nb;
    const int b = static_cast<int>(idx % nb);
    const uint64_t p = first + i;
    // Every block of the row draws the same component (a pure function of the particle).
    const double u = detail::philox_uniform(seed, kStreamTarget, p, 0u, detail::kTargetComponentBlock);
    const int k = detail::pick_component(u, cum, K);
    Real z[4];
    detail::philox_normal4<Real>(seed, kStreamTarget, p, detail::kTargetNormalStep,
                                 static_cast<uint32_t>(b), z);
    const double* mu = means + static_cast<std::size_t>(k) * d;
    const double* s = sd + static_cast<std::size_t>(k) * d;
    Real* y = Y + i * d;
    for (int q = 0; q < 4; ++q) {
      const int j = 4 * b + q;
      if (j < d) y[j] = static_cast<Real>(mu[j] + s[j] * static_cast<double>(z[q]));
    }
  }
}

template <typename Real>
__global__ void square_kernel(const Real* __restrict__ Y,  // [n]
                              Real* __restrict__ Ysq,      // [n]
                              std::size_t n) {
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const Real y = Y[idx];
    Ysq[idx] = y * y;
  }
}

/// Sum over the W lanes of a group by a butterfly (every lane gets the same bits). Every lane of
/// the warp executes it (the row loop below has the same trip count across the warp).
template <typename Real>
__device__ __forceinline__ Real group_sum(Real v, int W) {
  for (int o = W / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o, W);
  return v;
}

template <typename Real>
__device__ __forceinline__ detail::OnlineLse<Real> group_lse(detail::OnlineLse<Real> s, int W) {
  for (int o = W / 2; o > 0; o /= 2) {
    detail::OnlineLse<Real> other;
    other.mx = __shfl_xor_sync(0xffffffffu, s.mx, o, W);
    other.sum = __shfl_xor_sync(0xffffffffu, s.sum, o, W);
    s = lse_merge(s, other);
  }
  return s;
}

/// W lanes per row (weights_lane.hpp). The rows of a block's warps advance together: row r0 +
/// (thread / W) for r0 stepping by the grid's rows, so every lane of a warp makes the same number of
/// trips and the shuffles always have the whole warp; lanes past the last row compute on nothing.
/// Launch bounds (256, 3): ptxas (sm_90) then fits both precisions without spills (float 56
/// registers, double 80); with (256) alone it squeezes double into 48 registers and spills 32
/// bytes, uncapped it takes 78.
template <typename Real>
__global__ void __launch_bounds__(kBlockThreads, 3)
    posterior_weights_kernel(Real* __restrict__ G,           // [rows, K] in G1, out W
                             const Real* __restrict__ G2,    // [rows, K] or null
                             const Real* __restrict__ Y,     // [rows, d]
                             const Real* __restrict__ bias,  // [K]
                             const Real* __restrict__ Q,     // [K] or [K, d]
                             Real* __restrict__ s2,          // [rows]
                             std::size_t rows, int d, int K, int W, QMode mode) {
  const int lane = static_cast<int>(threadIdx.x) % W;
  const std::size_t rows_per_block = blockDim.x / W;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * rows_per_block;
  for (std::size_t r0 = static_cast<std::size_t>(blockIdx.x) * rows_per_block; r0 < rows; r0 += stride) {
    const std::size_t i = r0 + threadIdx.x / W;
    const bool active = i < rows;
    const int k_end = active ? K : 0;  // an inactive lane owns nothing: empty states, zero sums
    Real rsq = 0;
    if (mode == QMode::Isotropic) rsq = group_sum(active ? weights_lane_rsq(Y + i * d, d, lane, W) : Real(0), W);
    Real* row = G + (active ? i : 0) * K;
    const Real* g2 = (mode == QMode::Diagonal) ? G2 + (active ? i : 0) * K : nullptr;
    const detail::OnlineLse<Real> total =
        group_lse(weights_lane_scan<Real>(row, g2, rsq, bias, Q, k_end, mode, lane, W), W);
    Real wq = active ? weights_lane_write<Real>(row, g2, rsq, bias, Q, K, mode, lane, W, total) : Real(0);
    if (mode == QMode::Isotropic) wq = group_sum(wq, W);
    if (active && lane == 0) s2[i] = weights_row_s2<Real>(wq, Q, mode);
  }
}

template <typename Real>
__global__ void update_kernel(Real* __restrict__ Y,               // [rows, d]
                              const Real* __restrict__ S1,        // [rows, d]
                              const Real* __restrict__ S2,        // [rows, d] or null
                              const Real* __restrict__ s2row,     // [rows]
                              const Real* __restrict__ bias_dir,  // [d] or null
                              std::size_t rows, int d, uint64_t first, StepScalars<Real> sc,
                              bool draw_z, bool draw_xi) {
  const int nb = (d + 3) / 4;
  const std::size_t n = rows * static_cast<std::size_t>(nb);
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / nb;
    const int b = static_cast<int>(idx % nb);
    const uint64_t p = first + i;
    Real z[4] = {0, 0, 0, 0};
    Real xi[4] = {0, 0, 0, 0};
    if (draw_z) detail::philox_normal4<Real>(sc.seed, kStreamStep, p, sc.t, static_cast<uint32_t>(b), z);
    if (draw_xi)
      detail::philox_normal4<Real>(sc.seed, kStreamScoreNoise, p, sc.t, static_cast<uint32_t>(b), xi);
    const std::size_t base = i * d;
    for (int q = 0; q < 4; ++q) {
      const int j = 4 * b + q;
      if (j >= d) break;
      const Real y = Y[base + j];
      const Real s2 = (S2 != nullptr) ? S2[base + j] : s2row[i];
      const Real s = detail::score_coord<Real>(y, S1[base + j], s2);
      const Real bj = (bias_dir != nullptr) ? bias_dir[j] : Real(0);
      Y[base + j] = detail::update_coord<Real>(y, s, bj, xi[q], z[q], sc);
    }
  }
}

template <typename Real>
void init_normal_impl(Real* d_Y, std::size_t rows, int d, uint64_t seed, uint64_t first,
                      cudaStream_t stream) {
  const std::size_t n = rows * static_cast<std::size_t>(coord_blocks(d));
  if (n == 0) return;
  init_normal_kernel<Real><<<grid_blocks(n), kBlockThreads, 0, stream>>>(d_Y, rows, d, seed, first);
  CUDA_CHECK_LAUNCH("init_normal_kernel");
}

template <typename Real>
void fill_target_impl(Real* d_Y, std::size_t rows, int d, int K, const double* d_means,
                      const double* d_sd, const double* d_cum, uint64_t seed, uint64_t first,
                      cudaStream_t stream) {
  const std::size_t n = rows * static_cast<std::size_t>(coord_blocks(d));
  if (n == 0) return;
  fill_target_kernel<Real><<<grid_blocks(n), kBlockThreads, 0, stream>>>(d_Y, d_means, d_sd, d_cum,
                                                                         rows, d, K, seed, first);
  CUDA_CHECK_LAUNCH("fill_target_kernel");
}

template <typename Real>
void square_impl(const Real* d_Y, Real* d_Ysq, std::size_t n, cudaStream_t stream) {
  if (n == 0) return;
  square_kernel<Real><<<grid_blocks(n), kBlockThreads, 0, stream>>>(d_Y, d_Ysq, n);
  CUDA_CHECK_LAUNCH("square_kernel");
}

template <typename Real>
void posterior_weights_impl(Real* d_G, const Real* d_G2, const Real* d_Y, const Real* d_bias,
                            const Real* d_Q, Real* d_s2, std::size_t rows, int d, int K,
                            QMode mode, cudaStream_t stream) {
  if (rows == 0) return;
  const int W = weights_lanes(K);
  posterior_weights_kernel<Real><<<grid_blocks(rows * static_cast<std::size_t>(W)), kBlockThreads, 0, stream>>>(
      d_G, d_G2, d_Y, d_bias, d_Q, d_s2, rows, d, K, W, mode);
  CUDA_CHECK_LAUNCH("posterior_weights_kernel");
}

template <typename Real>
void update_impl(Real* d_Y, const Real* d_S1, const Real* d_S2, const Real* d_s2,
                 const Real* d_bias_dir, std::size_t rows, int d, uint64_t first,
                 const StepScalars<Real>& sc, bool draw_z, bool draw_xi, cudaStream_t stream) {
  const std::size_t n = rows * static_cast<std::size_t>(coord_blocks(d));
  if (n == 0) return;
  update_kernel<Real><<<grid_blocks(n), kBlockThreads, 0, stream>>>(
      d_Y, d_S1, d_S2, d_s2, d_bias_dir, rows, d, first, sc, draw_z, draw_xi);
  CUDA_CHECK_LAUNCH("update_kernel");
}

}  // namespace

void launch_init_normal(float* d_Y, std::size_t rows, int d, uint64_t seed, uint64_t first,
                        cudaStream_t stream) {
  init_normal_impl(d_Y, rows, d, seed, first, stream);
}
void launch_init_normal(double* d_Y, std::size_t rows, int d, uint64_t seed, uint64_t first,
                        cudaStream_t stream) {
  init_normal_impl(d_Y, rows, d, seed, first, stream);
}

void launch_fill_target(float* d_Y, std::size_t rows, int d, int K, const double* d_means,
                        const double* d_sd, const double* d_cum, uint64_t seed, uint64_t first,
                        cudaStream_t stream) {
  fill_target_impl(d_Y, rows, d, K, d_means, d_sd, d_cum, seed, first, stream);
}
void launch_fill_target(double* d_Y, std::size_t rows, int d, int K, const double* d_means,
                        const double* d_sd, const double* d_cum, uint64_t seed, uint64_t first,
                        cudaStream_t stream) {
  fill_target_impl(d_Y, rows, d, K, d_means, d_sd, d_cum, seed, first, stream);
}

void launch_square(const float* d_Y, float* d_Ysq, std::size_t n, cudaStream_t stream) {
  square_impl(d_Y, d_Ysq, n, stream);
}
void launch_square(const double* d_Y, double* d_Ysq, std::size_t n, cudaStream_t stream) {
  square_impl(d_Y, d_Ysq, n, stream);
}

void launch_posterior_weights(float* d_G, const float* d_G2, const float* d_Y, const float* d_bias,
                              const float* d_Q, float* d_s2, std::size_t rows, int d, int K,
                              QMode mode, cudaStream_t stream) {
  posterior_weights_impl(d_G, d_G2, d_Y, d_bias, d_Q, d_s2, rows, d, K, mode, stream);
}
void launch_posterior_weights(double* d_G, const double* d_G2, const double* d_Y,
                              const double* d_bias, const double* d_Q, double* d_s2,
                              std::size_t rows, int d, int K, QMode mode, cudaStream_t stream) {
  posterior_weights_impl(d_G, d_G2, d_Y, d_bias, d_Q, d_s2, rows, d, K, mode, stream);
}

void launch_update(float* d_Y, const float* d_S1, const float* d_S2, const float* d_s2,
                   const float* d_bias_dir, std::size_t rows, int d, uint64_t first,
                   const StepScalars<float>& sc, bool draw_z, bool draw_xi, cudaStream_t stream) {
  update_impl(d_Y, d_S1, d_S2, d_s2, d_bias_dir, rows, d, first, sc, draw_z, draw_xi, stream);
}
void launch_update(double* d_Y, const double* d_S1, const double* d_S2, const double* d_s2,
                   const double* d_bias_dir, std::size_t rows, int d, uint64_t first,
                   const StepScalars<double>& sc, bool draw_z, bool draw_xi, cudaStream_t stream) {
  update_impl(d_Y, d_S1, d_S2, d_s2, d_bias_dir, rows, d, first, sc, draw_z, draw_xi, stream);
}

}  // namespace gmmdiff::gpu
