// gmmdiff: the per-particle arithmetic of the two-sided bounds (THEORY.md, "Two-sided TV: upper
// bounds and exact densities"), shared by every implementation of BoundsKernels
// (gmmdiff/bounds_kernels.hpp): the CPU one (host/bounds/bounds_cpu.cpp) is the oracle, a device
// one would call the same functions. Plain pointers and doubles only, host and device.
//
//   - path_step_term: one step's log rev_t(x_{t-1} | x_t) - log fwd_t(x_t | x_{t-1}) of the ddpm
//     path bound, as one difference of quadratic forms in the forward noise w and the score e;
//   - LogSumExpAcc: the mean of M importance weights in log space;
//   - the score's Jacobian J = -D + U U^T (U = [sqrt(w_k) delta_k]) at one point: the K x K Gram
//     M = U^T U from the logits' products (isotropic, O(K^2)) or from the deltas (diagonal,
//     O(K^2 d)), and log det(I + kappa J) by the matrix determinant lemma and a K x K Cholesky.
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

/// M = U^T U [K, K] for isotropic components, M_jk = sqrt(w_j w_k) <delta_j, delta_k>, from the
/// logits' products g1_k = <y, P_k>, ysq = |y|^2 and the step's PP = P P^T [K, K], in O(K^2):
///   <delta_j, delta_k> = <P_j - S1, P_k - S1> - (Q_j - a) <y, P_k - S1> - (Q_k - a) <y, P_j - S1>
///                        + (Q_j - a)(Q_k - a) |y|^2,
/// with <P_j, S1> = (PP w)_j, |S1|^2 = w^T PP w, <y, S1> = sum_k w_k g1_k (no |y|^2-sized terms
/// cancel when the Q_k are equal). scratch: [K]. Returns a.
GMMDIFF_HD double jacobian_gram_isotropic(int K, const double* w, const double* g1, double ysq, const double* Q,
                                          const double* PP, double* M, double* scratch) {
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
    for (int k = 0; k <= j; ++k) {
      const double qk = Q[k] - a, yk = g1[k] - yS;
      const double g = (PP[j * K + k] - scratch[j] - scratch[k] + wPPw) - qj * yk - qk * yj + qj * qk * ysq;
      const double m = sqrt(w[j] * w[k]) * g;
      M[j * K + k] = m;
      M[k * K + j] = m;
    }
  }
  return a;
}

/// Diagonal components: D = diag(S2), S2_j = sum_k w_k Q_kj, and U's rows
/// u_k = sqrt(w_k) delta_k, delta_kj = (P_kj - S1_j) - (Q_kj - S2_j) y_j, written to U [K, d].
GMMDIFF_HD void jacobian_rows_diagonal(int K, int d, const double* w, const double* y, const double* P,
                                       const double* Q, const double* S1, const double* S2, double* U) {
  for (int k = 0; k < K; ++k) {
    const double sw = sqrt(w[k]);
    for (int j = 0; j < d; ++j)
      U[k * d + j] = sw * ((P[k * d + j] - S1[j]) - (Q[k * d + j] - S2[j]) * y[j]);
  }
}

/// In place: the Cholesky factor of the symmetric A [K, K] (lower triangle used); returns false as
/// soon as a pivot is not positive (A is not positive definite), else true with
/// logdet = log det A.
GMMDIFF_HD bool cholesky_logdet(double* A, int K, double* logdet) {
  double ld = 0;
  for (int j = 0; j < K; ++j) {
    double djj = A[j * K + j];
    for (int k = 0; k < j; ++k) djj -= A[j * K + k] * A[j * K + k];
    if (!(djj > 0)) return false;
    const double ljj = sqrt(djj);
    A[j * K + j] = ljj;
    ld += log(djj);
    for (int i = j + 1; i < K; ++i) {
      double v = A[i * K + j];
      for (int k = 0; k < j; ++k) v -= A[i * K + k] * A[j * K + k];
      A[i * K + j] = v / ljj;
    }
  }
  *logdet = ld;
  return true;
}

/// log det(I_d + kappa J) for isotropic components, J = -a I + U U^T with M = U^T U [K, K], when
/// b = 1 - kappa a > 0 (then I + kappa J is positive definite, since U U^T is positive semi-
/// definite): the matrix determinant lemma gives
///   det(I + kappa J) = b^d det(I_K + (kappa / b) M),
/// the K x K determinant by Cholesky (A [K, K] is overwritten). Returns false when b <= 0 or the
/// Cholesky fails (the caller then decides with the eigenvalues of M).
GMMDIFF_HD bool log_det_isotropic(int K, int d, double a, const double* M, double kappa, double* A, double* logdet) {
  const double b = 1.0 - kappa * a;
  if (!(b > 0)) return false;
  const double c = kappa / b;
  for (int i = 0; i < K * K; ++i) A[i] = c * M[i];
  for (int k = 0; k < K; ++k) A[k * K + k] += 1.0;
  double ldk = 0;
  if (!cholesky_logdet(A, K, &ldk)) return false;
  *logdet = d * log(b) + ldk;
  return true;
}

/// log det(I_d + kappa J) for diagonal components, J = -diag(S2) + sum_k u_k u_k^T with u_k the
/// rows of U [K, d] (jacobian_rows_diagonal): B = I - kappa diag(S2), and
/// det = det(B) det(I_K + kappa U B^-1 U^T) (O(K^2 d); A [K, K] overwritten).
/// Returns false when some B_jj <= 0 or the Cholesky fails.
GMMDIFF_HD bool log_det_diagonal(int K, int d, const double* S2, const double* U, double kappa, double* A,
                                 double* logdet) {
  double ldb = 0;
  for (int j = 0; j < d; ++j) {
    const double b = 1.0 - kappa * S2[j];
    if (!(b > 0)) return false;
    ldb += log(b);
  }
  for (int i = 0; i < K; ++i)
    for (int k = 0; k <= i; ++k) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += U[i * d + j] * U[k * d + j] / (1.0 - kappa * S2[j]);
      A[i * K + k] = kappa * s + (i == k ? 1.0 : 0.0);
      A[k * K + i] = A[i * K + k];
    }
  double ldk = 0;
  if (!cholesky_logdet(A, K, &ldk)) return false;
  *logdet = ldb + ldk;
  return true;
}

}  // namespace detail
}  // namespace gmmdiff
