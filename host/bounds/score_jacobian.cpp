// gmmdiff: the Jacobian of the exact score at a point, factored (score_jacobian.hpp).
#include "bounds/score_jacobian.hpp"

#include <algorithm>
#include <cmath>

#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::bounds {

namespace {

constexpr int kMaxDenseDeterminantD = 4096;  // d x d Cholesky fallback (diagonal, B not positive)
constexpr int kMaxDenseEigenD = 1024;        // d x d eigenproblem (diagonal op norm)

// Cholesky log-determinant of a dense symmetric n x n matrix (overwritten); false if not PD.
bool dense_logdet(std::vector<double>& A, int n, double& logdet) {
  return detail::cholesky_logdet(A.data(), n, &logdet);
}

}  // namespace

std::vector<double> gram_of_rows(const std::vector<double>& P, int K, int d) {
  std::vector<double> G(std::size_t(K) * K);
  for (int j = 0; j < K; ++j)
    for (int k = 0; k <= j; ++k) {
      double s = 0;
      for (int i = 0; i < d; ++i) s += P[std::size_t(j) * d + i] * P[std::size_t(k) * d + i];
      G[std::size_t(j) * K + k] = G[std::size_t(k) * K + j] = s;
    }
  return G;
}

JacobianStep jacobian_step(const StepCoeffs& c, int d, int K) {
  GMMDIFF_EXPECTS(c.P.size() == std::size_t(K) * d, "jacobian_step: coefficients for ", c.P.size(),
                  " values, expected K x d = ", K, " x ", d);
  JacobianStep js;
  js.d = d;
  js.K = K;
  js.diagonal = c.diagonal;
  js.P = c.P;
  js.Q = c.Q;
  js.bias = c.bias;
  if (!c.diagonal) js.PP = gram_of_rows(c.P, K, d);
  return js;
}

void jacobian_at(const JacobianStep& js, const double* y, JacobianAt& out) {
  const int d = js.d, K = js.K;
  out.d = d;
  out.K = K;
  out.diagonal = js.diagonal;
  out.w.assign(K, 0.0);
  std::vector<double> g1(K), g2(js.diagonal ? K : 0);
  double ysq = 0;
  for (int j = 0; j < d; ++j) ysq += y[j] * y[j];
  for (int k = 0; k < K; ++k) {
    double s = 0, s2 = 0;
    for (int j = 0; j < d; ++j) {
      s += y[j] * js.P[std::size_t(k) * d + j];
      if (js.diagonal) s2 += y[j] * y[j] * js.Q[std::size_t(k) * d + j];
    }
    g1[k] = s;
    if (js.diagonal) g2[k] = s2;
  }
  std::copy(g1.begin(), g1.end(), out.w.begin());
  const detail::QMode mode = js.diagonal ? detail::QMode::Diagonal : detail::QMode::Isotropic;
  detail::posterior_weights_row<double>(out.w.data(), js.diagonal ? g2.data() : nullptr, ysq, js.bias.data(),
                                        js.Q.data(), K, mode);
  // S1 = sum_k w_k P_k, S2 = sum_k w_k Q_k (a scalar a when isotropic), the rows u_k.
  std::vector<double> S1(d, 0.0), S2(d, 0.0);
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < d; ++j) {
      S1[j] += out.w[k] * js.P[std::size_t(k) * d + j];
      S2[j] += out.w[k] * (js.diagonal ? js.Q[std::size_t(k) * d + j] : js.Q[k]);
    }
  out.U.assign(std::size_t(K) * d, 0.0);
  if (js.diagonal) {
    detail::jacobian_rows_diagonal(K, d, out.w.data(), y, js.P.data(), js.Q.data(), S1.data(), S2.data(),
                                   out.U.data());
    out.dvec = S2;
    out.M.clear();
    out.a = 0;
  } else {
    // The rows for dense_jacobian; M by the O(K^2) route the engines use.
    std::vector<double> Qd(std::size_t(K) * d);
    for (int k = 0; k < K; ++k) std::fill(Qd.begin() + std::size_t(k) * d, Qd.begin() + std::size_t(k + 1) * d, js.Q[k]);
    detail::jacobian_rows_diagonal(K, d, out.w.data(), y, js.P.data(), Qd.data(), S1.data(), S2.data(),
                                   out.U.data());
    out.M.assign(std::size_t(K) * K, 0.0);
    std::vector<double> scratch(K);
    out.a = detail::jacobian_gram_isotropic(K, out.w.data(), g1.data(), ysq, js.Q.data(), js.PP.data(), out.M.data(),
                                            scratch.data());
    out.dvec.clear();
  }
}

LogDet log_det_i_plus_kappa_j(const JacobianAt& j, double kappa) {
  const int d = j.d, K = j.K;
  LogDet r;
  std::vector<double> A(std::size_t(K) * K);
  if (!j.diagonal) {
    double ld = 0;
    if (detail::log_det_isotropic(K, d, j.a, j.M.data(), kappa, A.data(), &ld)) {
      r.value = ld;
      r.positive_definite = true;
      return r;
    }
    // b = 1 - kappa a <= 0 (or M numerically indefinite): J's spectrum is mu_i - a for the top
    // min(d, K) eigenvalues mu_i of M, and -a with multiplicity d - min(d, K).
    const std::vector<double> mu = symmetric_eigenvalues(j.M, K);
    const double b = 1.0 - kappa * j.a;
    const int top = std::min(d, K);
    double ld2 = 0;
    for (int i = K - top; i < K; ++i) {
      const double e = b + kappa * mu[i];
      if (!(e > 0)) return r;
      ld2 += std::log(e);
    }
    if (d > top) {
      if (!(b > 0)) return r;
      ld2 += (d - top) * std::log(b);
    }
    r.value = ld2;
    r.positive_definite = true;
    return r;
  }
  double ld = 0;
  if (detail::log_det_diagonal(K, d, j.dvec.data(), j.U.data(), kappa, A.data(), &ld)) {
    r.value = ld;
    r.positive_definite = true;
    return r;
  }
  GMMDIFF_EXPECTS(d <= kMaxDenseDeterminantD, "log det(I + kappa J): some 1 - kappa D_jj <= 0 and d = ", d,
                  " is too large for the dense d x d fallback (at most ", kMaxDenseDeterminantD, ")");
  std::vector<double> Dn = dense_jacobian(j);
  for (double& x : Dn) x *= kappa;
  for (int i = 0; i < d; ++i) Dn[std::size_t(i) * d + i] += 1.0;
  if (dense_logdet(Dn, d, ld)) {
    r.value = ld;
    r.positive_definite = true;
  }
  return r;
}

double trace_i_plus_j(const JacobianAt& j) {
  double tr = 0;
  if (j.diagonal) {
    for (int i = 0; i < j.d; ++i) tr += 1.0 - j.dvec[i];
    for (double u : j.U) tr += u * u;
  } else {
    tr = j.d * (1.0 - j.a);
    for (int k = 0; k < j.K; ++k) tr += j.M[std::size_t(k) * j.K + k];
  }
  return tr;
}

double op_norm(const JacobianAt& j) {
  if (!j.diagonal) {
    const std::vector<double> mu = symmetric_eigenvalues(j.M, j.K);
    const int top = std::min(j.d, j.K);
    double r = j.d > top ? std::abs(j.a) : 0.0;
    for (int i = j.K - top; i < j.K; ++i) r = std::max(r, std::abs(mu[i] - j.a));
    return r;
  }
  GMMDIFF_EXPECTS(j.d <= kMaxDenseEigenD, "||J||_op for diagonal components needs a d x d eigenproblem; d = ", j.d,
                  " exceeds ", kMaxDenseEigenD);
  const std::vector<double> ev = symmetric_eigenvalues(dense_jacobian(j), j.d);
  return std::max(std::abs(ev.front()), std::abs(ev.back()));
}

std::vector<double> dense_jacobian(const JacobianAt& j) {
  const int d = j.d, K = j.K;
  std::vector<double> J(std::size_t(d) * d, 0.0);
  for (int k = 0; k < K; ++k) {
    const double* u = j.U.data() + std::size_t(k) * d;
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) J[std::size_t(a) * d + b] += u[a] * u[b];
  }
  for (int a = 0; a < d; ++a) J[std::size_t(a) * d + a] -= j.diagonal ? j.dvec[a] : j.a;
  return J;
}

std::vector<double> symmetric_eigenvalues(std::vector<double> A, int n) {
  // Cyclic Jacobi: each rotation zeroes one off-diagonal pair; sweeps until the off-diagonal mass
  // is below 1e-30 of the total (quadratic convergence: a handful of sweeps).
  constexpr int kMaxSweeps = 100;
  auto at = [&](int i, int k) -> double& { return A[std::size_t(i) * n + k]; };
  double total = 0;
  for (double x : A) total += x * x;
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    double off = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += at(p, q) * at(p, q);
    if (off <= 1e-30 * total || off == 0) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = at(p, q);
        if (apq == 0) continue;
        const double theta = (at(q, q) - at(p, p)) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; ++k) {  // columns p, q
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - s * akq;
          at(k, q) = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // rows p, q
          const double apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - s * aqk;
          at(q, k) = s * apk + c * aqk;
        }
      }
  }
  std::vector<double> ev(n);
  for (int i = 0; i < n; ++i) ev[i] = at(i, i);
  std::sort(ev.begin(), ev.end());
  return ev;
}

}  // namespace gmmdiff::bounds
