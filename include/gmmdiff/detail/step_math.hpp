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

}  // namespace detail
}  // namespace gmmdiff
