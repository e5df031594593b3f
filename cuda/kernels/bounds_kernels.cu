// gmmdiff: the bounds' kernels (bounds_kernels.hpp). Each kernel is a thin shell around the
// host-compilable code of bounds_lane.hpp: the shell maps threads to rows, lanes and blocks and
// does the shuffles; the arithmetic is the CPU kernels' (host/bounds/bounds_cpu.cpp), so those are
// the oracle. Three shapes (bounds_lane.hpp): a thread per (row, block of 4 coordinates) where
// Philox normals are drawn; a group of W lanes per row where a row is reduced (coalesced loads, a
// butterfly of shuffles); a thread per row for the K x K determinant (its matrices interleaved
// across the chunk's rows: FlowScratch) and for the sequential sums whose order is the CPU's.
#include "cuda/kernels/bounds_kernels.hpp"

#include "cuda/kernels/bounds_lane.hpp"
#include "cuda/kernels/launch_config.hpp"
#include "cuda/kernels/weights_lane.hpp"
#include "cuda/rt/cuda_error.hpp"
#include "gmmdiff/detail/bounds_math.hpp"

namespace gmmdiff::gpu {

namespace {

using detail::DenseMat;
using detail::StridedMat;
using detail::StridedVec;

/// Sum over the W lanes of a group by a butterfly (every lane gets the same bits); every lane of
/// the warp executes it (the callers' row loops have one trip count per block).
__device__ __forceinline__ double lanes_sum(double v, int W) {
  for (int o = W / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o, W);
  return v;
}

// ---- the path bound ----

__global__ void path_outer_kernel(double* __restrict__ X,    // [count M, d]
                                  double* __restrict__ acc,  // [count M]
                                  uint64_t count, int M, int d, uint64_t seed, uint64_t first,
                                  DeviceMixtureTables mix) {
  for (uint64_t c = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; c < count;
       c += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = c * static_cast<uint64_t>(M);
    const double lps = path_outer_draw(seed, first + c, mix.K, mix.d, mix.diagonal, mix.cum, mix.means, mix.sd,
                                       mix.inv_var, mix.logc, X + r * d);
    acc[r] = -lps;
  }
}

__global__ void path_spread_kernel(double* __restrict__ X,    // [count M, d]
                                   double* __restrict__ acc,  // [count M]
                                   uint64_t rows, int M, int d) {
  const uint64_t n = rows * static_cast<uint64_t>(d);
  for (uint64_t idx = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = idx / d;
    const int j = static_cast<int>(idx % d);
    const uint64_t m = r % static_cast<uint64_t>(M);
    if (m == 0) continue;  // the outer draw's own row: the source
    X[idx] = X[(r - m) * d + j];
    if (j == 0) acc[r] = acc[r - m];
  }
}

__global__ void path_forward_kernel(double* __restrict__ X,  // [rows, d]
                                    double* __restrict__ Z,  // [rows, d]
                                    uint64_t rows, int d, uint64_t first, int M, uint64_t seed, uint32_t t,
                                    double sqrt_alpha, double sqrt_beta) {
  const int nb = (d + 3) / 4;
  const uint64_t n = rows * static_cast<uint64_t>(nb);
  for (uint64_t idx = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = idx / nb;
    const int b = static_cast<int>(idx % nb);
    path_forward_block(X + r * d, Z + r * d, seed, path_row_particle(first, r, static_cast<uint64_t>(M)), t, b, d,
                       sqrt_alpha, sqrt_beta);
  }
}

/// W lanes per row; the rows of a block advance together (one trip count per block).
__global__ void __launch_bounds__(kBlockThreads)
    path_term_kernel(double* __restrict__ acc,             // [rows]
                     const double* __restrict__ X,         // [rows, d]
                     const double* __restrict__ Z,         // [rows, d]
                     const double* __restrict__ S1,        // [rows, d]
                     const double* __restrict__ S2,        // [rows, d] or null
                     const double* __restrict__ s2,        // [rows] (when S2 is null)
                     const double* __restrict__ bias_dir,  // [d] or null
                     uint64_t rows, int d, int W, double score_scale, detail::PathStepTerms terms) {
  const int lane = static_cast<int>(threadIdx.x) % W;
  const uint64_t rows_per_block = blockDim.x / W;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * rows_per_block;
  for (uint64_t r0 = blockIdx.x * rows_per_block; r0 < rows; r0 += stride) {
    const uint64_t r = r0 + threadIdx.x / W;
    const bool active = r < rows;
    PathTermSums p;
    if (active) {
      const uint64_t o = r * static_cast<uint64_t>(d);
      p = path_term_lane(X + o, Z + o, S1 + o, S2 != nullptr ? S2 + o : nullptr, S2 != nullptr ? 0.0 : s2[r],
                         bias_dir, score_scale, d, lane, W);
    }
    const double ww = lanes_sum(p.ww, W), we = lanes_sum(p.we, W), ee = lanes_sum(p.ee, W);
    if (active && lane == 0) acc[r] += detail::path_step_term(terms, ww, we, ee);
  }
}

__global__ void path_prefix_kernel(const double* __restrict__ l,       // [count M]
                                   const int* __restrict__ prefixes,   // [P]
                                   double* __restrict__ out,           // [count, P]
                                   uint64_t count, int M, int P) {
  for (uint64_t c = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; c < count;
       c += static_cast<uint64_t>(gridDim.x) * blockDim.x)
    path_prefix_log_means(l + c * static_cast<uint64_t>(M), static_cast<uint64_t>(M), prefixes, P,
                          out + c * static_cast<uint64_t>(P));
}

// ---- rows ----

__global__ void __launch_bounds__(kBlockThreads)
    row_sumsq_kernel(const double* __restrict__ X,  // [rows, d]
                     const double* base,            // [rows] or null (may alias out)
                     double* out,                   // [rows]
                     double scale, uint64_t rows, int d, int W) {
  const int lane = static_cast<int>(threadIdx.x) % W;
  const uint64_t rows_per_block = blockDim.x / W;
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * rows_per_block;
  for (uint64_t r0 = blockIdx.x * rows_per_block; r0 < rows; r0 += stride) {
    const uint64_t r = r0 + threadIdx.x / W;
    const bool active = r < rows;
    const double q = lanes_sum(active ? weights_lane_rsq<double>(X + r * static_cast<uint64_t>(d), d, lane, W) : 0.0, W);
    if (active && lane == 0) out[r] = (base != nullptr ? base[r] : 0.0) + scale * q;
  }
}

// ---- the flow ----

__global__ void flow_logdet_isotropic_kernel(double* __restrict__ acc,        // [rows]
                                             const double* __restrict__ Wt,   // [rows, K]
                                             const double* __restrict__ G1,   // [rows, K]
                                             const double* __restrict__ ysq,  // [rows]
                                             const double* __restrict__ Q,    // [K]
                                             const double* __restrict__ PP,   // [K, K]
                                             uint64_t rows, int d, int K, double kappa, double dl,
                                             FlowScratch s, FlowFallback fb) {
  for (uint64_t r = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const StridedMat<double> M{s.M + r, K, s.stride}, A{s.A + r, K, s.stride};
    const StridedVec<double> v{s.v + r, s.stride};
    double a = 0;
    const uint64_t o = r * static_cast<uint64_t>(K);
    const FlowLogDet L = flow_logdet_isotropic(K, d, Wt + o, G1 + o, ysq[r], Q, PP, kappa, M, A, v, &a);
    if (L.decided) {
      acc[r] = flow_acc_after(acc[r], dl, L.value);
    } else {
      v[0] = a;  // the fallback needs a; the vector is free once M is formed
      fb.rows[atomicAdd(fb.count, 1u)] = static_cast<unsigned int>(r);
    }
  }
}

__global__ void flow_logdet_diagonal_kernel(double* __restrict__ acc,       // [rows]
                                            const double* __restrict__ Wt,  // [rows, K]
                                            const double* __restrict__ Y,   // [rows, d]
                                            const double* __restrict__ S1,  // [rows, d]
                                            const double* __restrict__ S2,  // [rows, d]
                                            const double* __restrict__ P,   // [K, d]
                                            const double* __restrict__ Q,   // [K, d]
                                            uint64_t rows, int d, int K, double kappa, double dl, FlowScratch s,
                                            FlowFallback fb) {
  for (uint64_t r = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const StridedMat<double> U{s.U + r, d, s.stride}, A{s.A + r, K, s.stride};
    const uint64_t o = r * static_cast<uint64_t>(d);
    const FlowLogDet L =
        flow_logdet_diagonal(K, d, Wt + r * static_cast<uint64_t>(K), Y + o, P, Q, S1 + o, S2 + o, kappa, U, A);
    if (L.decided) acc[r] = flow_acc_after(acc[r], dl, L.value);
    else fb.rows[atomicAdd(fb.count, 1u)] = static_cast<unsigned int>(r);
  }
}

/// The listed rows, a thread each in turn (grid-stride over the list); diagonal: thread g uses
/// dense slot g, so exactly fb.slots threads run.
__global__ void flow_fallback_kernel(double* __restrict__ acc,       // [rows]
                                     const double* __restrict__ S2,  // [rows, d] (diagonal) or null
                                     int d, int K, bool diagonal, double kappa, double dl, int t, FlowScratch s,
                                     FlowFallback fb) {
  const unsigned int n = *fb.count;
  const uint64_t g = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  const uint64_t threads =
      diagonal ? static_cast<uint64_t>(fb.slots > 0 ? fb.slots : 1) : static_cast<uint64_t>(gridDim.x) * blockDim.x;
  if (g >= threads) return;
  for (uint64_t i = g; i < n; i += threads) {
    const uint64_t r = fb.rows[i];
    double ld = 0;
    bool ok = false;
    if (!diagonal) {
      const StridedMat<double> M{s.M + r, K, s.stride}, A{s.A + r, K, s.stride};
      const StridedVec<double> v{s.v + r, s.stride};
      ok = flow_logdet_fallback_isotropic(K, d, v[0], kappa, M, A, &ld);
    } else if (d > detail::kMaxDenseLogDetD || fb.dense == nullptr) {
      *fb.error = 1;  // the host reports it (the CPU's message) at the end of the chunk
      continue;
    } else {
      const StridedMat<double> U{s.U + r, d, s.stride};
      const DenseMat<double> D{fb.dense + g * static_cast<uint64_t>(d) * d, d};
      ok = detail::log_det_diagonal_dense(K, d, S2 + r * static_cast<uint64_t>(d), U, kappa, D, &ld);
    }
    if (!ok) {
      atomicMax(fb.fold, t);
      ld = 0;
    }
    acc[r] = flow_acc_after(acc[r], dl, ld);
  }
}

__global__ void flow_log_ratio_kernel(const double* __restrict__ Y,    // [rows, d]
                                      const double* __restrict__ acc,  // [rows]
                                      double* __restrict__ out,        // [rows]
                                      uint64_t rows, DeviceMixtureTables ref) {
  for (uint64_t r = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<uint64_t>(gridDim.x) * blockDim.x)
    out[r] = detail::mixture_log_density_no2pi(ref.K, ref.d, ref.diagonal, ref.logc, ref.means, ref.inv_var,
                                               Y + r * static_cast<uint64_t>(ref.d)) -
             acc[r];
}

/// Blocks for `rows` rows of W lanes each.
unsigned int lane_grid(uint64_t rows, int W) { return grid_blocks(static_cast<std::size_t>(rows) * W); }

}  // namespace

void launch_path_outer(double* d_X, double* d_acc, uint64_t count, int M, int d, uint64_t seed, uint64_t first,
                       const DeviceMixtureTables& mix, cudaStream_t stream) {
  if (count == 0) return;
  path_outer_kernel<<<grid_blocks(count), kBlockThreads, 0, stream>>>(d_X, d_acc, count, M, d, seed, first, mix);
  CUDA_CHECK_LAUNCH("path_outer_kernel");
}

void launch_path_spread(double* d_X, double* d_acc, uint64_t count, int M, int d, cudaStream_t stream) {
  if (count == 0 || M <= 1) return;
  const uint64_t rows = count * static_cast<uint64_t>(M);
  path_spread_kernel<<<grid_blocks(rows * d), kBlockThreads, 0, stream>>>(d_X, d_acc, rows, M, d);
  CUDA_CHECK_LAUNCH("path_spread_kernel");
}

void launch_path_forward(double* d_X, double* d_Z, uint64_t rows, int d, uint64_t first, int M, uint64_t seed,
                         uint32_t t, double sqrt_alpha, double sqrt_beta, cudaStream_t stream) {
  if (rows == 0) return;
  path_forward_kernel<<<grid_blocks(rows * coord_blocks(d)), kBlockThreads, 0, stream>>>(
      d_X, d_Z, rows, d, first, M, seed, t, sqrt_alpha, sqrt_beta);
  CUDA_CHECK_LAUNCH("path_forward_kernel");
}

void launch_path_term(double* d_acc, const double* d_X, const double* d_Z, const double* d_S1, const double* d_S2,
                      const double* d_s2, const double* d_bias_dir, uint64_t rows, int d, double score_scale,
                      const detail::PathStepTerms& terms, cudaStream_t stream) {
  if (rows == 0) return;
  const int W = bounds_row_lanes(d);
  path_term_kernel<<<lane_grid(rows, W), kBlockThreads, 0, stream>>>(d_acc, d_X, d_Z, d_S1, d_S2, d_s2, d_bias_dir,
                                                                      rows, d, W, score_scale, terms);
  CUDA_CHECK_LAUNCH("path_term_kernel");
}

void launch_path_prefix_means(const double* d_l, uint64_t count, int M, const int* d_prefixes, int P,
                              double* d_out, cudaStream_t stream) {
  if (count == 0) return;
  path_prefix_kernel<<<grid_blocks(count), kBlockThreads, 0, stream>>>(d_l, d_prefixes, d_out, count, M, P);
  CUDA_CHECK_LAUNCH("path_prefix_kernel");
}

void launch_row_sumsq(const double* d_X, const double* d_base, double scale, double* d_out, uint64_t rows, int d,
                      cudaStream_t stream) {
  if (rows == 0) return;
  const int W = bounds_row_lanes(d);
  row_sumsq_kernel<<<lane_grid(rows, W), kBlockThreads, 0, stream>>>(d_X, d_base, d_out, scale, rows, d, W);
  CUDA_CHECK_LAUNCH("row_sumsq_kernel");
}

void launch_flow_logdet_isotropic(double* d_acc, const double* d_W, const double* d_G1, const double* d_ysq,
                                  const double* d_Q, const double* d_PP, uint64_t rows, int d, int K, double kappa,
                                  double d_log_inv_sqrt_alpha, const FlowScratch& s, const FlowFallback& fb,
                                  cudaStream_t stream) {
  if (rows == 0) return;
  flow_logdet_isotropic_kernel<<<grid_blocks(rows), kBlockThreads, 0, stream>>>(
      d_acc, d_W, d_G1, d_ysq, d_Q, d_PP, rows, d, K, kappa, d_log_inv_sqrt_alpha, s, fb);
  CUDA_CHECK_LAUNCH("flow_logdet_isotropic_kernel");
}

void launch_flow_logdet_diagonal(double* d_acc, const double* d_W, const double* d_Y, const double* d_S1,
                                 const double* d_S2, const double* d_P, const double* d_Q, uint64_t rows, int d, int K,
                                 double kappa, double d_log_inv_sqrt_alpha, const FlowScratch& s,
                                 const FlowFallback& fb, cudaStream_t stream) {
  if (rows == 0) return;
  flow_logdet_diagonal_kernel<<<grid_blocks(rows), kBlockThreads, 0, stream>>>(
      d_acc, d_W, d_Y, d_S1, d_S2, d_P, d_Q, rows, d, K, kappa, d_log_inv_sqrt_alpha, s, fb);
  CUDA_CHECK_LAUNCH("flow_logdet_diagonal_kernel");
}

void launch_flow_fallback(double* d_acc, const double* d_S2, uint64_t rows, int d, int K, bool diagonal, double kappa,
                          double d_log_inv_sqrt_alpha, int t, const FlowScratch& s, const FlowFallback& fb,
                          cudaStream_t stream) {
  if (rows == 0) return;
  const uint64_t threads = diagonal ? static_cast<uint64_t>(fb.slots > 0 ? fb.slots : 1) : rows;
  flow_fallback_kernel<<<grid_blocks(threads), kBlockThreads, 0, stream>>>(d_acc, d_S2, d, K, diagonal, kappa,
                                                                          d_log_inv_sqrt_alpha, t, s, fb);
  CUDA_CHECK_LAUNCH("flow_fallback_kernel");
}

void launch_flow_log_ratio(const double* d_Y, const double* d_acc, uint64_t rows, const DeviceMixtureTables& ref,
                           double* d_out, cudaStream_t stream) {
  if (rows == 0) return;
  flow_log_ratio_kernel<<<grid_blocks(rows), kBlockThreads, 0, stream>>>(d_Y, d_acc, d_out, rows, ref);
  CUDA_CHECK_LAUNCH("flow_log_ratio_kernel");
}

}  // namespace gmmdiff::gpu
