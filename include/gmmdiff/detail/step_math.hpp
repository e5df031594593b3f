// gmmdiff: the per-particle arithmetic of one reverse step, shared by the CPU and CUDA backends
// (so the CPU backend is the oracle for the GPU one). The products Y P^T, (Y*Y) Q^T, W P and W Q
// are done by BLAS / cuBLAS; what remains per particle is here. Notation as in backend.hpp's
// StepCoeffs: logit_k = bias_k + G1_k - 1/2 G2_k, with G1 = <y, P_k>, G2 = <y*y, Q_k> (diagonal)
// or |y|^2 Q_k (isotropic); weights w = softmax(logit) by log-sum-exp.
#pragma once
#include <cstdint>

#include "gmmdiff/detail/hd.hpp"
#include "gmmdiff/detail/philox.hpp"

namespace gmmdiff {
namespace detail {

/// Scalars of one step in the run's precision.
template <typename Real>
struct StepScalars {
  Real kappa;
  Real inv_sqrt_alpha;
  Real sigma;
  Real score_scale;
  Real noise_sd;
  uint32_t t;
  uint64_t seed;
};

/// How the y^2 term of the logits is formed.
enum class QMode : int { Uniform = 0, Isotropic = 1, Diagonal = 2 };

/// In place over one particle's row of K values: in, G1 (and for Diagonal, g2 holds G2);
/// out, posterior weights. rsq = |y|^2 (Isotropic). Returns sum_k w_k Q_k for Isotropic
/// (the coefficient of -y in the score), 0 otherwise. Never exponentiates a positive number.
template <typename Real>
GMMDIFF_HD Real posterior_weights_row(Real* row, const Real* g2, Real rsq, const Real* bias,
                                      const Real* Q, int K, QMode mode) {
  Real mx = 0;
  for (int k = 0; k < K; ++k) {
    Real l = bias[k] + row[k];
    if (mode == QMode::Diagonal) l -= Real(0.5) * g2[k];
    else if (mode == QMode::Isotropic) l -= Real(0.5) * rsq * Q[k];
    row[k] = l;
    mx = (k == 0 || l > mx) ? l : mx;
  }
  Real sum = 0;
  for (int k = 0; k < K; ++k) {
    const Real e = dexp(row[k] - mx);
    row[k] = e;
    sum += e;
  }
  const Real inv = Real(1) / sum;
  Real wq = 0;
  for (int k = 0; k < K; ++k) {
    row[k] *= inv;
    if (mode == QMode::Isotropic) wq += row[k] * Q[k];
  }
  return wq;
}

// ---- a vector-friendly variant of posterior_weights_row (the CPU's fused path) ----
// Each loop below is a plain element-wise map or a plain reduction (no loop-carried state but
// the reduction variable), so a host compiler vectorises it across k: with OpenMP, the
// GMMDIFF_SIMD* pragmas ask for it; on the device and without OpenMP they expand to nothing.
#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define GMMDIFF_PRAGMA_(x) _Pragma(#x)
#define GMMDIFF_SIMD GMMDIFF_PRAGMA_(omp simd)
#define GMMDIFF_SIMD_REDUCE(op, var) GMMDIFF_PRAGMA_(omp simd reduction(op : var))
#else
#define GMMDIFF_SIMD
#define GMMDIFF_SIMD_REDUCE(op, var)
#endif

/// The exponential posterior_weights_row uses; a vectorising caller passes its own (e.g. one
/// with a SIMD variant) to posterior_weights_row_v.
struct DefaultExp {
  template <typename Real>
  GMMDIFF_HD Real operator()(Real x) const { return dexp(x); }
};

/// posterior_weights_row with the same contract (in: G1 in row, G2 in g2 for Diagonal, rsq for
/// Isotropic; out: weights in row; returns sum_k w_k Q_k for Isotropic, else 0), written as four
/// separable passes (logits, max, exp and sum, normalise) so that each vectorises over k; the
/// exponential is exp_fn. Equal to posterior_weights_row up to the order of the sums (and exp_fn's
/// rounding); like it, never exponentiates a positive number.
template <typename Real, typename ExpFn = DefaultExp>
GMMDIFF_HD Real posterior_weights_row_v(Real* row, const Real* g2, Real rsq, const Real* bias,
                                        const Real* Q, int K, QMode mode, ExpFn exp_fn = ExpFn()) {
  const Real half = Real(0.5);
  if (mode == QMode::Diagonal) {
    GMMDIFF_SIMD
    for (int k = 0; k < K; ++k) row[k] = bias[k] + row[k] - half * g2[k];
  } else if (mode == QMode::Isotropic) {
    const Real hr = half * rsq;
    GMMDIFF_SIMD
    for (int k = 0; k < K; ++k) row[k] = bias[k] + row[k] - hr * Q[k];
  } else {
    GMMDIFF_SIMD
    for (int k = 0; k < K; ++k) row[k] = bias[k] + row[k];
  }
  Real mx = row[0];
  GMMDIFF_SIMD_REDUCE(max, mx)
  for (int k = 0; k < K; ++k) mx = row[k] > mx ? row[k] : mx;
  Real sum = 0;
  GMMDIFF_SIMD_REDUCE(+, sum)
  for (int k = 0; k < K; ++k) {
    const Real e = exp_fn(row[k] - mx);
    row[k] = e;
    sum += e;
  }
  const Real inv = Real(1) / sum;
  Real wq = 0;
  if (mode == QMode::Isotropic) {
    GMMDIFF_SIMD_REDUCE(+, wq)
    for (int k = 0; k < K; ++k) {
      row[k] *= inv;
      wq += row[k] * Q[k];
    }
  } else {
    GMMDIFF_SIMD
    for (int k = 0; k < K; ++k) row[k] *= inv;
  }
  return wq;
}

/// Score coordinate j from the products: s_j = S1_j - S2_j y_j, where S1 = sum_k w_k P_kj and
/// S2 = sum_k w_k Q_kj (Diagonal) or the scalar sum_k w_k Q_k (Isotropic, Uniform).
template <typename Real>
GMMDIFF_HD Real score_coord(Real y, Real s1, Real s2) {
  return s1 - s2 * y;
}

/// The update of one coordinate: y' = (y + kappa * e) / sqrt(alpha) + sigma z,
/// e = score_scale * s + bias_j + noise_sd * xi (the injected score error).
template <typename Real>
GMMDIFF_HD Real update_coord(Real y, Real score, Real bias_j, Real xi, Real z, const StepScalars<Real>& c) {
  const Real e = c.score_scale * score + bias_j + c.noise_sd * xi;
  return c.inv_sqrt_alpha * (y + c.kappa * e) + c.sigma * z;
}

/// Index of the component drawn by a uniform u in (0, 1) given cumulative weights cum[0..K-1]
/// (cum[K-1] = 1): the first k with u < cum[k] (binary search; clamps to K-1).
GMMDIFF_HD int pick_component(double u, const double* cum, int K) {
  int lo = 0, hi = K - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (u < cum[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/// Philox coordinates of an exact target sample: the component from (stream, particle, step 0,
/// block 0xFFFFFFFF), the normals from (stream, particle, step 1, block j/4).
constexpr uint32_t kTargetComponentBlock = 0xFFFFFFFFu;
constexpr uint32_t kTargetNormalStep = 1;

/// Bin of x among edges[0..B] (edges[b] <= x < edges[b+1]; values below edges[0] go to bin 0,
/// at or above edges[B] to bin B-1). Binary search.
template <typename Real>
GMMDIFF_HD int find_bin(Real x, const double* edges, int B) {
  int lo = 0, hi = B - 1;  // answer in [lo, hi]
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (static_cast<double>(x) >= edges[mid]) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

template <typename Real>
GMMDIFF_HD bool is_finite(Real x) {
  return x - x == x - x;  // false for NaN and +-Inf, also under fast-math-free builds
}

// ==== CUDA fused step helpers ====
// The fused step (cuda/kernels/fused_step.cu) never stores a particle's K weights: its logits arrive one
// component at a time and are folded into an online log-sum-exp (a running max and the sum of
// exp(l - max)); the score's sums over earlier components are rescaled when the max grows.
// Mathematically the same weights as posterior_weights_row; rounding differs only in summation
// order and the rescaling. Usable by any backend (host or device).

/// logit_k = bias_k + G1_k - 1/2 G2_k (Diagonal), - 1/2 rsq Q_k (Isotropic), or bias_k + G1_k
/// (Uniform): the expression posterior_weights_row forms, from one component's products.
template <typename Real>
GMMDIFF_HD Real fused_logit(Real bias_k, Real g1, Real g2, Real rsq, Real q_k, QMode mode) {
  Real l = bias_k + g1;
  if (mode == QMode::Diagonal) l -= Real(0.5) * g2;
  else if (mode == QMode::Isotropic) l -= Real(0.5) * rsq * q_k;
  return l;
}

/// Running state of an online log-sum-exp: mx = the largest logit so far, sum = sum of
/// exp(l - mx) over the logits so far. The weights are then w_k = exp(l_k - mx) / sum.
template <typename Real>
struct OnlineLse {
  Real mx;
  Real sum;
};

/// Folds logit l of component k (k = 0 starts the state) into s. On return, `scale` is the factor
/// by which sums over components 0..k-1 weighted by exp(l - old max) must be multiplied (1 when
/// the max holds) and `e` = exp(l - new max) is the weight of component k, both in [0, 1]: like
/// posterior_weights_row it never exponentiates a positive number, and a NaN logit propagates the
/// same way (`l > mx` is false for NaN).
template <typename Real>
GMMDIFF_HD void online_lse_push(OnlineLse<Real>& s, Real l, int k, Real& scale, Real& e) {
  if (k == 0) {
    s.mx = l;
    s.sum = Real(1);
    scale = Real(1);
    e = Real(1);
  } else if (l > s.mx) {
    scale = dexp(s.mx - l);
    e = Real(1);
    s.sum = s.sum * scale + Real(1);
    s.mx = l;
  } else {
    scale = Real(1);
    e = dexp(l - s.mx);
    s.sum += e;
  }
}

}  // namespace detail
}  // namespace gmmdiff
