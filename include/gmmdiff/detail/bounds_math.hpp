// gmmdiff: the per-particle arithmetic of the two-sided bounds (THEORY.md, "Two-sided TV: upper
// bounds and exact densities"), shared by every implementation of BoundsKernels
// (gmmdiff/bounds_kernels.hpp): the CPU one (host/bounds/bounds_cpu.cpp) is the oracle, the CUDA
// one (cuda/cuda_bounds.cu, cuda/kernels/bounds_kernels.cu) calls the same functions in its
// threads. Plain pointers, small accessors and doubles only, host and device (GMMDIFF_HD).
//
//   - path_step_term: one step's log rev_t(x_{t-1} | x_t) - log fwd_t(x_t | x_{t-1}) of the ddpm
//     path bound, as one difference of quadratic forms in the forward noise w and the score e;
//   - LogSumExpAcc: the mean of M importance weights in log space;
//   - the score's Jacobian J = -D + U U^T (U = [sqrt(w_k) delta_k]) at one point: the K x K Gram
//     M = U^T U from the logits' products (isotropic, O(K^2)) or from the deltas (diagonal,
//     O(K^2 d)), and log det(I + kappa J) by the matrix determinant lemma and a K x K Cholesky;
//     where the lemma does not apply, the spectrum (Jacobi eigenvalues of M) or a dense d x d
//     Cholesky (diagonal components) decide, as the host API does.
#pragma once
#include <math.h>

#include <cstdint>

#include "gmmdiff/detail/hd.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"

namespace gmmdiff {
namespace detail {

// ---- randomness of the path bound ----
/// Continuation m of outer draw i draws its forward noise as Philox particle (i << 20) | m
/// (stream kStreamBoundForward): the noise of (i, m) does not depend on M, so figures for several
/// M (U_TV(M/4) and U_TV(M)) share their continuations (common random numbers).
constexpr int kContinuationBits = 20;
constexpr uint64_t kMaxContinuations = uint64_t(1) << kContinuationBits;       ///< M <= 2^20
constexpr uint64_t kMaxOuterDraws = uint64_t(1) << (48 - kContinuationBits);  ///< n < 2^28
GMMDIFF_HD uint64_t continuation_particle(uint64_t i, uint64_t m) { return (i << kContinuationBits) | m; }

// ---- one step of the ddpm path bound ----
/// Constants of step t (host/bounds/bounds.cpp computes them in double from the schedule):
/// forward x_t = sqrt_alpha x_{t-1} + sqrt_beta w; reverse kernel N(m_t(x_t), sigma^2 I) with
/// m_t(x) = (x + kappa e(x)) / sqrt(alpha), e the sampler's (possibly erroneous) score and sigma^2
/// the sampler's variance (plus kappa^2 noise_sd^2 / alpha for the `gaussian` score error). Then
///   log rev - log fwd = 1/2 [ (1 - rho) |w|^2 - rho (2 gamma <w, e> + gamma^2 |e|^2) ]
///                       - d/2 log(sigma^2 / beta),
/// rho = beta / (alpha sigma^2), gamma = kappa / sqrt(beta). 1 - rho and log(sigma^2 / beta) are
/// formed without cancellation (lcw's first steps have beta near 1e-21).
struct PathStepTerms {
  double sqrt_alpha = 1, sqrt_beta = 0;
  double rho = 1, one_minus_rho = 0, gamma = 0;
  double half_d_log_ratio = 0;  ///< d/2 log(sigma^2 / beta)
};

/// The step's log rev - log fwd from ww = |w|^2, we = <w, e>, ee = |e|^2.
GMMDIFF_HD double path_step_term(const PathStepTerms& c, double ww, double we, double ee) {
  return 0.5 * (c.one_minus_rho * ww - c.rho * (2.0 * c.gamma * we + c.gamma * c.gamma * ee)) - c.half_d_log_ratio;
}

/// log sum_i exp(l_i), accumulated one term at a time (a running max and the sum of exp(l - max)):
/// never exponentiates a positive number. Empty: -inf. A NaN term makes the value NaN.
struct LogSumExpAcc {
  double mx = -INFINITY;
  double s = 0;
  GMMDIFF_HD void push(double l) {
    if (l == -INFINITY) return;
    if (l > mx) {
      s = s * exp(mx - l) + 1.0;
      mx = l;
    } else {
      s += exp(l - mx);  // NaN l lands here and makes s NaN
    }
  }
  GMMDIFF_HD void merge(const LogSumExpAcc& o) {
    if (o.mx == -INFINITY && o.s == 0) return;
    if (o.mx > mx) {
      s = s * exp(mx - o.mx) + o.s;
      mx = o.mx;
    } else {
      s += o.s * exp(o.mx - mx);
    }
  }
  GMMDIFF_HD double value() const { return s > 0 || s != s ? mx + log(s) : -INFINITY; }
};

// ---- mixtures: exact draws and log-densities ----
/// An exact draw x [d] of the mixture sum_k pi_k N(means_k, diag(sd_k^2)) (sd [K] isotropic or
/// [K, d] diagonal; cum [K] the cumulative weights, cum[K-1] = 1), laid out on Philox as the
/// backends' fill_target lays out the target: the component from (stream, particle, step 0, block
/// kTargetComponentBlock), the normals from (stream, particle, step kTargetNormalStep, block j/4).
GMMDIFF_HD void mixture_draw(uint64_t seed, uint32_t stream, uint64_t particle, int K, int d, bool diagonal,
                             const double* cum, const double* means, const double* sd, double* x) {
  const int k = pick_component(philox_uniform(seed, stream, particle, 0, kTargetComponentBlock), cum, K);
  const double* mu = means + static_cast<uint64_t>(k) * d;
  for (int b = 0; 4 * b < d; ++b) {
    double z[4];
    philox_normal4<double>(seed, stream, particle, kTargetNormalStep, static_cast<uint32_t>(b), z);
    for (int c = 0; c < 4 && 4 * b + c < d; ++c) {
      const int j = 4 * b + c;
      x[j] = mu[j] + (diagonal ? sd[static_cast<uint64_t>(k) * d + j] : sd[k]) * z[c];
    }
  }
}

/// log p(x) + d/2 log(2 pi) of the mixture above: log-sum-exp over k of
/// logc_k - 1/2 sum_j (x_j - mu_kj)^2 inv_var_kj, with logc_k = log pi_k - 1/2 sum_j log var_kj
/// (inv_var [K] isotropic or [K, d] diagonal). The 2 pi constant is left out because it cancels
/// in every ratio the bounds form (log N(x_T; 0, I) - log p_s(x_s), log p(Y_s) - log q_s(Y_s)).
GMMDIFF_HD double mixture_log_density_no2pi(int K, int d, bool diagonal, const double* logc, const double* means,
                                            const double* inv_var, const double* x) {
  LogSumExpAcc acc;
  for (int k = 0; k < K; ++k) {
    const double* mu = means + static_cast<uint64_t>(k) * d;
    double q = 0;
    if (diagonal) {
      const double* iv = inv_var + static_cast<uint64_t>(k) * d;
      for (int j = 0; j < d; ++j) q += (x[j] - mu[j]) * (x[j] - mu[j]) * iv[j];
    } else {
      for (int j = 0; j < d; ++j) q += (x[j] - mu[j]) * (x[j] - mu[j]);
      q *= inv_var[k];
    }
    acc.push(logc[k] - 0.5 * q);
  }
  return acc.value();
}

// ---- the Jacobian of the exact score at one point ----
// Notation of THEORY.md with the step coefficients of backend.hpp: P_k = sqrt(abar) mu_k / V_k,
// Q_k = 1 / V_k, w the posterior weights. Isotropic components: g_k = P_k - Q_k y, s = sum w_k g_k,
// delta_k = g_k - s = (P_k - S1) - (Q_k - a) y with S1 = sum_k w_k P_k and a = sum_k w_k Q_k, and
//   J = -a I + sum_k w_k delta_k delta_k^T = -a I + U U^T.
//
// The small matrices (M, A [K, K], U [K, d]) are reached through an accessor, so that one body
// serves both layouts: DenseMat (row-major, the CPU's and the host API's) and StridedMat (element
// (i, j) of particle r at p[(i ld + j) stride + r], the CUDA kernels' layout: the particles of a
// chunk interleaved, so the threads of a warp touch consecutive addresses). The functions taking
// plain pointers are the DenseMat instances: the same arithmetic in the same order.

/// Row-major matrix at p with leading dimension ld.
template <typename T>
struct DenseMat {
  T* p;
  int ld;
  GMMDIFF_HD T& operator()(int i, int j) const { return p[static_cast<uint64_t>(i) * ld + j]; }
};
/// Element (i, j) at p[(i ld + j) stride] (p already offset to one particle).
template <typename T>
struct StridedMat {
  T* p;
  int ld;
  uint64_t stride;
  GMMDIFF_HD T& operator()(int i, int j) const { return p[(static_cast<uint64_t>(i) * ld + j) * stride]; }
};
/// Element i at p[i stride].
template <typename T>
struct StridedVec {
  T* p;
  uint64_t stride;
  GMMDIFF_HD T& operator[](int i) const { return p[static_cast<uint64_t>(i) * stride]; }
};

/// M = U^T U [K, K] for isotropic components, M_jk = sqrt(w_j w_k) <delta_j, delta_k>, from the
/// logits' products g1_k = <y, P_k>, ysq = |y|^2 and the step's PP = P P^T [K, K], in O(K^2):
///   <delta_j, delta_k> = <P_j - S1, P_k - S1> - (Q_j - a) <y, P_k - S1> - (Q_k - a) <y, P_j - S1>
///                        + (Q_j - a)(Q_k - a) |y|^2,
/// with <P_j, S1> = (PP w)_j, |S1|^2 = w^T PP w, <y, S1> = sum_k w_k g1_k (no |y|^2-sized terms
/// cancel when the Q_k are equal). scratch: [K] (any accessor with operator[]). Returns a.
template <typename Mat, typename Vec>
GMMDIFF_HD double jacobian_gram_isotropic_m(int K, const double* w, const double* g1, double ysq, const double* Q,
                                            const double* PP, Mat M, Vec scratch) {
  double a = 0, yS = 0;
  for (int k = 0; k < K; ++k) {
    a += w[k] * Q[k];
    yS += w[k] * g1[k];
  }
  double wPPw = 0;
  for (int j = 0; j < K; ++j) {
    double s = 0;
    for (int k = 0; k < K; ++k) s += PP[j * K + k] * w[k];
    scratch[j] = s;
    wPPw += w[j] * s;
  }
  for (int j = 0; j < K; ++j) {
    const double qj = Q[j] - a, yj = g1[j] - yS;
    const double sj = scratch[j];
    for (int k = 0; k <= j; ++k) {
      const double qk = Q[k] - a, yk = g1[k] - yS;
      const double g = (PP[j * K + k] - sj - scratch[k] + wPPw) - qj * yk - qk * yj + qj * qk * ysq;
      const double m = sqrt(w[j] * w[k]) * g;
      M(j, k) = m;
      M(k, j) = m;
    }
  }
  return a;
}
GMMDIFF_HD double jacobian_gram_isotropic(int K, const double* w, const double* g1, double ysq, const double* Q,
                                          const double* PP, double* M, double* scratch) {
  return jacobian_gram_isotropic_m(K, w, g1, ysq, Q, PP, DenseMat<double>{M, K}, scratch);
}

/// Diagonal components: D = diag(S2), S2_j = sum_k w_k Q_kj, and U's rows
/// u_k = sqrt(w_k) delta_k, delta_kj = (P_kj - S1_j) - (Q_kj - S2_j) y_j, written to U [K, d].
template <typename Mat>
GMMDIFF_HD void jacobian_rows_diagonal_m(int K, int d, const double* w, const double* y, const double* P,
                                         const double* Q, const double* S1, const double* S2, Mat U) {
  for (int k = 0; k < K; ++k) {
    const double sw = sqrt(w[k]);
    for (int j = 0; j < d; ++j)
      U(k, j) = sw * ((P[static_cast<uint64_t>(k) * d + j] - S1[j]) - (Q[static_cast<uint64_t>(k) * d + j] - S2[j]) * y[j]);
  }
}
GMMDIFF_HD void jacobian_rows_diagonal(int K, int d, const double* w, const double* y, const double* P,
                                       const double* Q, const double* S1, const double* S2, double* U) {
  jacobian_rows_diagonal_m(K, d, w, y, P, Q, S1, S2, DenseMat<double>{U, d});
}

/// In place: the Cholesky factor of the symmetric A [K, K] (lower triangle used); returns false as
/// soon as a pivot is not positive (A is not positive definite), else true with
/// logdet = log det A.
template <typename Mat>
GMMDIFF_HD bool cholesky_logdet_m(Mat A, int K, double* logdet) {
  double ld = 0;
  for (int j = 0; j < K; ++j) {
    double djj = A(j, j);
    for (int k = 0; k < j; ++k) djj -= A(j, k) * A(j, k);
    if (!(djj > 0)) return false;
    const double ljj = sqrt(djj);
    A(j, j) = ljj;
    ld += log(djj);
    for (int i = j + 1; i < K; ++i) {
      double v = A(i, j);
      for (int k = 0; k < j; ++k) v -= A(i, k) * A(j, k);
      A(i, j) = v / ljj;
    }
  }
  *logdet = ld;
  return true;
}
GMMDIFF_HD bool cholesky_logdet(double* A, int K, double* logdet) {
  return cholesky_logdet_m(DenseMat<double>{A, K}, K, logdet);
}

/// log det(I_d + kappa J) for isotropic components, J = -a I + U U^T with M = U^T U [K, K], when
/// b = 1 - kappa a > 0 (then I + kappa J is positive definite, since U U^T is positive semi-
/// definite): the matrix determinant lemma gives
///   det(I + kappa J) = b^d det(I_K + (kappa / b) M),
/// the K x K determinant by Cholesky (A [K, K] is overwritten). Returns false when b <= 0 or the
/// Cholesky fails (the caller then decides with the eigenvalues of M: log_det_isotropic_eigen).
template <typename MatM, typename MatA>
GMMDIFF_HD bool log_det_isotropic_m(int K, int d, double a, MatM M, double kappa, MatA A, double* logdet) {
  const double b = 1.0 - kappa * a;
  if (!(b > 0)) return false;
  const double c = kappa / b;
  for (int i = 0; i < K; ++i)
    for (int k = 0; k < K; ++k) A(i, k) = c * M(i, k);
  for (int k = 0; k < K; ++k) A(k, k) += 1.0;
  double ldk = 0;
  if (!cholesky_logdet_m(A, K, &ldk)) return false;
  *logdet = d * log(b) + ldk;
  return true;
}
GMMDIFF_HD bool log_det_isotropic(int K, int d, double a, const double* M, double kappa, double* A, double* logdet) {
  return log_det_isotropic_m(K, d, a, DenseMat<const double>{M, K}, kappa, DenseMat<double>{A, K}, logdet);
}

/// log det(I_d + kappa J) for diagonal components, J = -diag(S2) + sum_k u_k u_k^T with u_k the
/// rows of U [K, d] (jacobian_rows_diagonal): B = I - kappa diag(S2), and
/// det = det(B) det(I_K + kappa U B^-1 U^T) (O(K^2 d); A [K, K] overwritten).
/// Returns false when some B_jj <= 0 or the Cholesky fails (the caller then decides with the
/// dense d x d matrix: log_det_diagonal_dense).
template <typename MatU, typename MatA>
GMMDIFF_HD bool log_det_diagonal_m(int K, int d, const double* S2, MatU U, double kappa, MatA A, double* logdet) {
  double ldb = 0;
  for (int j = 0; j < d; ++j) {
    const double b = 1.0 - kappa * S2[j];
    if (!(b > 0)) return false;
    ldb += log(b);
  }
  for (int i = 0; i < K; ++i)
    for (int k = 0; k <= i; ++k) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += U(i, j) * U(k, j) / (1.0 - kappa * S2[j]);
      const double v = kappa * s + (i == k ? 1.0 : 0.0);
      A(i, k) = v;
      A(k, i) = v;
    }
  double ldk = 0;
  if (!cholesky_logdet_m(A, K, &ldk)) return false;
  *logdet = ldb + ldk;
  return true;
}
GMMDIFF_HD bool log_det_diagonal(int K, int d, const double* S2, const double* U, double kappa, double* A,
                                 double* logdet) {
  return log_det_diagonal_m(K, d, S2, DenseMat<const double>{U, d}, kappa, DenseMat<double>{A, K}, logdet);
}

// ---- when the determinant lemma does not apply ----
// The fast routes above return false when b = 1 - kappa a <= 0 (isotropic), some
// 1 - kappa D_jj <= 0 (diagonal), or the K x K Cholesky fails. Then I + kappa J may still be
// positive definite (its spectrum decides), and the routes below decide it: the same arithmetic as
// the host API's fallbacks (host/bounds/score_jacobian.cpp, log_det_i_plus_kappa_j), here so that
// a device runs it too.

/// Cyclic Jacobi sweeps over the symmetric n x n matrix A (both triangles filled; overwritten):
/// each rotation zeroes one off-diagonal pair; sweeps until the off-diagonal mass is at most 1e-30
/// of the total (quadratic convergence: a handful). On return A(i, i) holds the eigenvalues in
/// ascending order (the order of bounds::symmetric_eigenvalues).
constexpr int kJacobiMaxSweeps = 100;
template <typename Mat>
GMMDIFF_HD void symmetric_eigenvalues_m(Mat A, int n) {
  double total = 0;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < n; ++k) total += A(i, k) * A(i, k);
  for (int sweep = 0; sweep < kJacobiMaxSweeps; ++sweep) {
    double off = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += A(p, q) * A(p, q);
    if (off <= 1e-30 * total || off == 0) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = A(p, q);
        if (apq == 0) continue;
        const double theta = (A(q, q) - A(p, p)) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
        const double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; ++k) {  // columns p, q
          const double akp = A(k, p), akq = A(k, q);
          A(k, p) = c * akp - s * akq;
          A(k, q) = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // rows p, q
          const double apk = A(p, k), aqk = A(q, k);
          A(p, k) = c * apk - s * aqk;
          A(q, k) = s * apk + c * aqk;
        }
      }
  }
  for (int i = 1; i < n; ++i) {  // insertion sort of the diagonal
    const double v = A(i, i);
    int j = i - 1;
    while (j >= 0 && A(j, j) > v) {
      A(j + 1, j + 1) = A(j, j);
      --j;
    }
    A(j + 1, j + 1) = v;
  }
}

/// log det(I_d + kappa J) for isotropic components from the spectrum of J: mu_i - a for the top
/// min(d, K) eigenvalues mu_i of M, and -a with multiplicity d - min(d, K). E [K, K] holds a copy
/// of M on entry (overwritten). Returns false when I + kappa J is not positive definite. When
/// d > K and b = 1 - kappa a <= 0 the answer is false without the eigenvalues (the eigenvalue b
/// occurs d - K times).
template <typename Mat>
GMMDIFF_HD bool log_det_isotropic_eigen(int K, int d, double a, double kappa, Mat E, double* logdet) {
  const double b = 1.0 - kappa * a;
  const int top = d < K ? d : K;
  if (d > top && !(b > 0)) return false;
  symmetric_eigenvalues_m(E, K);
  double ld = 0;
  for (int i = K - top; i < K; ++i) {
    const double e = b + kappa * E(i, i);
    if (!(e > 0)) return false;
    ld += log(e);
  }
  if (d > top) ld += (d - top) * log(b);
  *logdet = ld;
  return true;
}

/// The largest d for which the dense d x d route below is taken (as the host API's); beyond it the
/// figure stops with an error.
constexpr int kMaxDenseLogDetD = 4096;

/// log det(I_d + kappa J) for diagonal components through the dense d x d matrix
/// I + kappa (U^T U - diag(S2)) (lower triangle formed, then Cholesky; Dn [d, d] overwritten).
/// Returns false when it is not positive definite. O(K d^2 + d^3 / 3).
template <typename MatU, typename MatD>
GMMDIFF_HD bool log_det_diagonal_dense(int K, int d, const double* S2, MatU U, double kappa, MatD Dn,
                                       double* logdet) {
  for (int i = 0; i < d; ++i)
    for (int j = 0; j <= i; ++j) Dn(i, j) = 0.0;
  for (int k = 0; k < K; ++k)
    for (int i = 0; i < d; ++i) {
      const double ui = U(k, i);
      for (int j = 0; j <= i; ++j) Dn(i, j) += ui * U(k, j);
    }
  for (int i = 0; i < d; ++i) Dn(i, i) -= S2[i];
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j <= i; ++j) Dn(i, j) *= kappa;
    Dn(i, i) += 1.0;
  }
  return cholesky_logdet_m(Dn, d, logdet);
}

}  // namespace detail
}  // namespace gmmdiff
