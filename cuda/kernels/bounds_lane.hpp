// gmmdiff: the per-thread and per-lane arithmetic of the bounds' kernels (bounds_kernels.cu), with
// no CUDA types, so that the host runs it too (tests/cuda/test_cuda_bounds.cpp emulates the
// kernels with it, lane by lane, against the CPU kernels, on a machine without a GPU). Everything
// is in double, as the CPU kernels (host/bounds/bounds_cpu.cpp), and built from the shared
// per-particle arithmetic of gmmdiff/detail/bounds_math.hpp, step_math.hpp and philox.hpp.
//
// Three shapes of work:
//   - a thread per (row, block of 4 coordinates) where Philox normals are drawn (one Philox call
//     gives the 4 normals of a block): the forward step of the path bound;
//   - a group of W lanes per row where a row is reduced to a few numbers: lane l owns coordinates
//     l, l + W, ... (consecutive lanes read consecutive doubles), the lanes' partial sums meet in a
//     butterfly of shuffles (every lane ends with the same bits): the path bound's step term
//     (|w|^2, <w, e>, |e|^2) and |x|^2;
//   - a thread per row (particle, or outer draw) for the K x K work of the determinant and the
//     sequential sums whose order is the CPU's (the log-sum-exp over m of an outer draw).
#pragma once
#include <cstdint>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"

namespace gmmdiff::gpu {

constexpr int kBoundsMaxLanes = 32;

/// Lanes per row of the row-reducing kernels: the smallest power of two >= d, at most 32.
inline int bounds_row_lanes(int d) {
  int W = 1;
  while (W < d && W < kBoundsMaxLanes) W *= 2;
  return W;
}

// ---- the path bound ----

/// The Philox particle of row r of a chunk of the path bound that starts at outer draw `first`:
/// rows are (outer draw, continuation) = (first + r / M, r % M), as the CPU kernels lay them out.
GMMDIFF_HD uint64_t path_row_particle(uint64_t first, uint64_t r, uint64_t M) {
  return detail::continuation_particle(first + r / M, r % M);
}

/// Outer draw i: x [d] ~ p_s exactly and returns log p_s(x) without its 2 pi constant (the CPU
/// kernels' MixtureTables::draw and log_density). Tables as detail::mixture_draw and
/// detail::mixture_log_density_no2pi take them.
GMMDIFF_HD double path_outer_draw(uint64_t seed, uint64_t i, int K, int d, bool diagonal, const double* cum,
                                  const double* means, const double* sd, const double* inv_var, const double* logc,
                                  double* x) {
  detail::mixture_draw(seed, kStreamBoundOuter, i, K, d, diagonal, cum, means, sd, x);
  return detail::mixture_log_density_no2pi(K, d, diagonal, logc, means, inv_var, x);
}

/// The forward step of block b (coordinates 4b .. 4b + 3 < d) of one continuation at step t:
/// x <- sqrt_alpha x + sqrt_beta w with w the block's normals (kStreamBoundForward, particle pid),
/// which are also written to z (the step term needs them after the score).
GMMDIFF_HD void path_forward_block(double* x, double* z, uint64_t seed, uint64_t pid, uint32_t t, int b, int d,
                                   double sqrt_alpha, double sqrt_beta) {
  double w[4];
  detail::philox_normal4<double>(seed, kStreamBoundForward, pid, t, static_cast<uint32_t>(b), w);
  for (int c = 0; c < 4; ++c) {
    const int j = 4 * b + c;
    if (j >= d) break;
    x[j] = sqrt_alpha * x[j] + sqrt_beta * w[c];
    z[j] = w[c];
  }
}

/// A lane's share of the step term's three sums.
struct PathTermSums {
  double ww = 0, we = 0, ee = 0;
};

/// Lane `lane` of W: its share of |w|^2, <w, e>, |e|^2 over coordinates j = lane, lane + W, ...,
/// with e_j = score_scale s_j + bias_dir_j and s_j = S1_j - S2_j x_j (s2 [d] for diagonal
/// components, else the row's scalar s2r), as the CPU's path_tile_step forms them.
/// x, z, s1: the row [d]; s2: the row [d] or null; bias_dir: [d] or null.
GMMDIFF_HD PathTermSums path_term_lane(const double* x, const double* z, const double* s1, const double* s2,
                                       double s2r, const double* bias_dir, double score_scale, int d, int lane,
                                       int W) {
  PathTermSums p;
  for (int j = lane; j < d; j += W) {
    const double sc = detail::score_coord<double>(x[j], s1[j], s2 != nullptr ? s2[j] : s2r);
    const double e = score_scale * sc + (bias_dir != nullptr ? bias_dir[j] : 0.0);
    p.ww += z[j] * z[j];
    p.we += z[j] * e;
    p.ee += e * e;
  }
  return p;
}

/// The end of an outer draw's continuations: l [M] their final log-weights (log N(x_T; 0, I)
/// included), out [P] = log of the mean of the weights of m = 0 .. prefixes[p] - 1, summed in the
/// order m = 0, 1, ... (the CPU's path_end).
GMMDIFF_HD void path_prefix_log_means(const double* l, uint64_t M, const int* prefixes, int P, double* out) {
  detail::LogSumExpAcc lse;
  int p = 0;
  for (uint64_t m = 0; m < M && p < P; ++m) {
    lse.push(l[m]);
    while (p < P && m + 1 == static_cast<uint64_t>(prefixes[p])) {
      out[p] = lse.value() - log(static_cast<double>(prefixes[p]));
      ++p;
    }
  }
}

// ---- the flow (ddim exact density) ----

/// What one particle's determinant step gave.
struct FlowLogDet {
  double value = 0;      ///< log det(I + kappa J) when decided
  bool decided = false;  ///< the fast route applied (else the fallback decides: flow_logdet_fallback_*)
};

/// Isotropic components, fast route: the Gram M (scratch, [K, K]) from the row's weights w [K],
/// logits' products g1 [K] and |y|^2, then the determinant lemma with A [K, K]. Returns a in *a.
template <typename MatM, typename MatA, typename Vec>
GMMDIFF_HD FlowLogDet flow_logdet_isotropic(int K, int d, const double* w, const double* g1, double ysq,
                                            const double* Q, const double* PP, double kappa, MatM M, MatA A,
                                            Vec scratch, double* a) {
  FlowLogDet r;
  *a = detail::jacobian_gram_isotropic_m(K, w, g1, ysq, Q, PP, M, scratch);
  r.decided = detail::log_det_isotropic_m(K, d, *a, M, kappa, A, &r.value);
  return r;
}

/// Isotropic components, the fallback: copies M into E and decides by the spectrum.
template <typename MatM, typename MatE>
GMMDIFF_HD bool flow_logdet_fallback_isotropic(int K, int d, double a, double kappa, MatM M, MatE E, double* ld) {
  for (int i = 0; i < K; ++i)
    for (int k = 0; k < K; ++k) E(i, k) = M(i, k);
  return detail::log_det_isotropic_eigen(K, d, a, kappa, E, ld);
}

/// Diagonal components, fast route: the rows U [K, d] from the row's weights w [K], y, S1, S2 [d],
/// then det(B) det(I + kappa U B^-1 U^T) with A [K, K].
template <typename MatU, typename MatA>
GMMDIFF_HD FlowLogDet flow_logdet_diagonal(int K, int d, const double* w, const double* y, const double* P,
                                           const double* Q, const double* S1, const double* S2, double kappa, MatU U,
                                           MatA A) {
  FlowLogDet r;
  detail::jacobian_rows_diagonal_m(K, d, w, y, P, Q, S1, S2, U);
  r.decided = detail::log_det_diagonal_m(K, d, S2, U, kappa, A, &r.value);
  return r;
}

/// log q: what a particle's determinant step subtracts (the CPU's flow_tile_step):
/// acc -= d log(1 / sqrt(alpha)) + log det(I + kappa J).
GMMDIFF_HD double flow_acc_after(double acc, double d_log_inv_sqrt_alpha, double ld) {
  return acc - (d_log_inv_sqrt_alpha + ld);
}

}  // namespace gmmdiff::gpu
