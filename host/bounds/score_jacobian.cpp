// gmmdiff: the Jacobian of the exact score at a point, factored (score_jacobian.hpp).
#include "bounds/score_jacobian.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "cpu/cpu_normals.hpp"  // GMMDIFF_CPU_CLONES
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::bounds {

namespace {

constexpr int kMaxDenseDeterminantD = 4096;  // d x d Cholesky fallback (diagonal, B not positive)
constexpr int kMaxDenseEigenD = 1024;        // d x d eigenproblem (diagonal op norm)
constexpr int kMaxDenseLanczosD = 512;       // d x d matrix per thread for Lanczos (2 MiB)

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

void jacobian_at(const JacobianStep& js, const double* y, JacobianAt& out, bool gram) {
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
    out.dvec.clear();
    if (!gram) {  // the rows only: J = -a I + sum_k u_k u_k^T, a = sum_k w_k Q_k
      out.M.clear();
      out.a = d > 0 ? S2[0] : 0.0;
      return;
    }
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
  } else if (j.M.empty()) {  // rows only (jacobian_at without the Gram matrix)
    tr = j.d * (1.0 - j.a);
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

void apply_jacobian(const JacobianAt& j, const double* x, double* y) {
  const int d = j.d, K = j.K;
  for (int i = 0; i < d; ++i) y[i] = -(j.diagonal ? j.dvec[i] : j.a) * x[i];
  for (int k = 0; k < K; ++k) {
    const double* u = j.U.data() + std::size_t(k) * d;
    double c = 0;
#pragma omp simd reduction(+ : c)  // vector partial sums: the serial chain's latency was the cost
    for (int i = 0; i < d; ++i) c += u[i] * x[i];
    for (int i = 0; i < d; ++i) y[i] += c * u[i];
  }
}

namespace {

/// The number of eigenvalues below x of the symmetric tridiagonal matrix (diagonal al[0..m-1],
/// off-diagonal be[0..m-2]), by the signs of its LDL^T pivots (Sturm).
int sturm_count_below(const std::vector<double>& al, const std::vector<double>& be, int m, double x) {
  int count = 0;
  double q = 1;
  for (int i = 0; i < m; ++i) {
    const double b2 = i > 0 ? be[i - 1] * be[i - 1] : 0.0;
    q = (al[i] - x) - (i > 0 ? b2 / q : 0.0);
    if (q == 0) q = -1e-300;  // x on a pivot: nudge (the count stays right up to rounding)
    if (q < 0) ++count;
  }
  return count;
}

/// Eigenvalue number `which` (0: smallest) of the tridiagonal matrix in [lo, hi], by bisection to
/// full accuracy.
double tridiagonal_eigenvalue(const std::vector<double>& al, const std::vector<double>& be, int m, int which,
                              double lo, double hi) {
  for (int it = 0; it < 200 && hi - lo > 4e-16 * std::max(std::abs(lo), std::abs(hi)) && hi - lo > 1e-300; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (sturm_count_below(al, be, m, mid) > which) hi = mid;
    else lo = mid;
  }
  return 0.5 * (lo + hi);
}

/// The smallest and largest eigenvalues of the symmetric tridiagonal matrix, each by Laguerre's
/// iteration on det(T - x I) from outside Gershgorin's interval (computed once for both, as the
/// scaling). For a polynomial whose roots are
/// all real it moves monotonically towards the nearest root and converges cubically: about 5
/// passes of the pivot recurrence where bisection to full accuracy takes about 55. It stays
/// outside the spectrum, where every LDL^T pivot is negative; a pivot that is not (rounding at the
/// root) or no convergence hands over to bisection between the last points known to be above and
/// below the eigenvalue.
std::pair<double, double> tridiagonal_extremes(const std::vector<double>& al, const std::vector<double>& be, int m) {
  double glo = al[0], ghi = al[0];
  for (int i = 0; i < m; ++i) {  // Gershgorin
    const double r = (i > 0 ? std::abs(be[i - 1]) : 0.0) + (i + 1 < m ? std::abs(be[i]) : 0.0);
    glo = std::min(glo, al[i] - r);
    ghi = std::max(ghi, al[i] + r);
  }
  const double span = std::max(ghi - glo, 1e-300);
  glo -= 1e-12 * span;
  ghi += 1e-12 * span;
  if (m == 1) return {al[0], al[0]};
  const double scale = std::max(std::abs(glo), std::abs(ghi));
  if (scale == 0) return {0.0, 0.0};
  if (!std::isfinite(scale))
    return {tridiagonal_eigenvalue(al, be, m, 0, glo, ghi), tridiagonal_eigenvalue(al, be, m, m - 1, glo, ghi)};
  // The iteration runs on w T, w a power of 2 (exact) that brings the spectrum to [-1, 1]: its
  // sums of 1 / (x - lambda)^2 then stay far from overflow at any scale of T.
  const double w = std::ldexp(1.0, -std::ilogb(scale));
  const double spanw = span * w;
  auto extreme = [&](bool top) -> double {
    const double sg = top ? 1.0 : -1.0;  // the smallest eigenvalue of T is minus the largest of -T
    // In the coordinates of sg w T, whose largest eigenvalue is wanted: x starts above the spectrum.
    double x = (top ? ghi : -glo) * w;
    double outside = x;                     // the last x where every pivot of sg w T - x I was negative
    double below = (top ? glo : -ghi) * w;  // a point known to be at or below the wanted eigenvalue
    const double n = m;
    bool fallback = true;
    for (int it = 0; it < 60; ++it) {
      // Pivots q_i of sg T - x I and their derivatives in x; r = 1 / q_{i-1} (one division a row).
      double r = 0, dq = 0, ddq = 0, G = 0, H = 0;
      bool inside = false;
      for (int i = 0; i < m; ++i) {
        double qi = sg * w * al[i] - x, dqi = -1, ddqi = 0;
        if (i > 0) {
          const double c = (w * be[i - 1]) * (w * be[i - 1]);
          qi -= c * r;
          dqi += c * dq * r * r;
          ddqi = c * r * r * (ddq - 2 * dq * dq * r);
        }
        if (!(qi < 0)) {
          inside = true;
          break;
        }
        r = 1.0 / qi;
        dq = dqi;
        ddq = ddqi;
        const double g = dq * r;
        G += g;  // d/dx log|det| = sum_j 1 / (x - lambda_j)
        H += g * g - ddq * r;  // minus its derivative: sum_j 1 / (x - lambda_j)^2
      }
      if (inside) {  // some pivot >= 0: x is at or below the largest eigenvalue of sg w T
        below = x;
        // The step landed on the eigenvalue (to rounding) or just past it: one Sturm count says
        // whether it lies in [x, x + delta], close enough (Ritz values need far less: the residual
        // test uses tol x the scale).
        const double hi = (x + 1e-13 * std::max(std::abs(x), spanw)) / w;
        if (top ? sturm_count_below(al, be, m, hi) == m : sturm_count_below(al, be, m, -hi) == 0)
          fallback = false;
        break;
      }
      if (!std::isfinite(G) || !std::isfinite(H)) break;
      outside = x;
      const double disc = std::max(0.0, (n - 1) * (n * H - G * G));
      const double step = n / (G + std::sqrt(disc));
      if (!(step >= 0) || !std::isfinite(step)) break;
      x -= step;
      if (step <= 4e-16 * std::abs(x) || step <= 1e-17 * spanw) {
        fallback = false;
        break;
      }
    }
    if (fallback)  // bisection between the last points known to be above and below it
      return top ? tridiagonal_eigenvalue(al, be, m, m - 1, below / w, outside / w)
                 : tridiagonal_eigenvalue(al, be, m, 0, -outside / w, -below / w);
    return sg * x / w;
  };
  return {extreme(false), extreme(true)};
}

/// |last component| of the unit eigenvector of the tridiagonal matrix for eigenvalue theta, by the
/// three-term recurrence from the first component (rescaled as it goes).
double ritz_last_component(const std::vector<double>& al, const std::vector<double>& be, int m, double theta) {
  double prev = 0, cur = 1, norm2 = 1;
  for (int i = 0; i + 1 < m; ++i) {
    if (be[i] == 0) return 0.0;
    const double next = ((theta - al[i]) * cur - (i > 0 ? be[i - 1] * prev : 0.0)) / be[i];
    prev = cur;
    cur = next;
    norm2 += cur * cur;
    if (norm2 > 1e200) {  // rescale
      const double sc = 1.0 / std::sqrt(norm2);
      prev *= sc;
      cur *= sc;
      norm2 = 1;
    }
  }
  return std::abs(cur) / std::sqrt(norm2);
}

}  // namespace

ExtremeEigen lanczos_extremes(const std::function<void(const double*, double*)>& matvec, int n, double tol) {
  GMMDIFF_EXPECTS(n >= 1, "lanczos_extremes: n = ", n);
  ExtremeEigen r;
  std::vector<double> V;  // the Lanczos vectors, row by row
  std::vector<double> al, be;
  std::vector<double> w(n);
  V.reserve(std::size_t(std::min(n, 64) + 1) * n);
  // A fixed start with every coordinate non-zero and no structure (a Weyl sequence): not
  // orthogonal to any eigenvector in practice, and the same on every run.
  {
    double n2 = 0;
    for (int i = 0; i < n; ++i) {
      const double x = std::fmod(0.5 + 0.6180339887498949 * (i + 1), 1.0) - 0.5 + (i % 2 ? 0.25 : -0.25);
      V.push_back(x);
      n2 += x * x;
    }
    for (int i = 0; i < n; ++i) V[i] /= std::sqrt(n2);
  }
  double scale = 0;
  for (int j = 0; j < n; ++j) {
    const double* v = V.data() + std::size_t(j) * n;
    matvec(v, w.data());
    double a = 0;
    for (int i = 0; i < n; ++i) a += w[i] * v[i];
    al.push_back(a);
    // Full reorthogonalisation, twice ("twice is enough"), against every earlier vector.
    for (int pass = 0; pass < 2; ++pass)
      for (int q = 0; q <= j; ++q) {
        const double* vq = V.data() + std::size_t(q) * n;
        double c = 0;
        for (int i = 0; i < n; ++i) c += w[i] * vq[i];
        for (int i = 0; i < n; ++i) w[i] -= c * vq[i];
      }
    double b = 0;
    for (int i = 0; i < n; ++i) b += w[i] * w[i];
    b = std::sqrt(b);
    const int m = j + 1;
    std::tie(r.lo, r.hi) = tridiagonal_extremes(al, be, m);
    r.iterations = m;
    scale = std::max({scale, std::abs(r.lo), std::abs(r.hi), std::abs(a)});
    if (m == n || b <= 1e-13 * std::max(scale, 1e-300)) break;  // exact: all of R^n, or an invariant subspace
    // The residual of a Ritz pair is b |last component of its Ritz vector|; it bounds the
    // distance from the Ritz value to an eigenvalue.
    const double res_hi = b * ritz_last_component(al, be, m, r.hi);
    const double res_lo = b * ritz_last_component(al, be, m, r.lo);
    if (m >= 2 && res_hi <= tol * scale && res_lo <= tol * scale) break;
    be.push_back(b);
    for (int i = 0; i < n; ++i) V.push_back(w[i] / b);
  }
  return r;
}

namespace {

/// A += sign J, J dense (row-major d x d): sum_k u_k u_k^T - D, a row of A at a time.
GMMDIFF_CPU_CLONES void add_dense_jacobian(const JacobianAt& j, double sign, double* A) {
  const int d = j.d;
  for (int k = 0; k < j.K; ++k) {
    const double* u = j.U.data() + std::size_t(k) * d;
    for (int a = 0; a < d; ++a) {
      const double c = sign * u[a];
      double* row = A + std::size_t(a) * d;
#pragma omp simd
      for (int b = 0; b < d; ++b) row[b] += c * u[b];
    }
  }
  for (int a = 0; a < d; ++a) A[std::size_t(a) * d + a] -= sign * (j.diagonal ? j.dvec[a] : j.a);
}

/// Whether Lanczos on a dense d x d matrix beats it on the factored form, for an operator of
/// `rows` rank-one terms (K per Jacobian): forming it costs rows d^2 and a product d^2 where
/// the factored product costs 2 rows d, over up to d iterations; so dense when rows > d (and d^2
/// doubles are small enough to hold per thread).
bool dense_is_cheaper(int d, int rows) { return rows > d && d <= kMaxDenseLanczosD; }

/// y = A x for the symmetric d x d A, as axpys of A's rows (A = A^T: no horizontal sums).
GMMDIFF_CPU_CLONES void dense_symmetric_product(const double* A, int d, const double* x, double* y) {
  std::fill(y, y + d, 0.0);
  for (int a = 0; a < d; ++a) {
    const double c = x[a];
    const double* row = A + std::size_t(a) * d;
#pragma omp simd
    for (int b = 0; b < d; ++b) y[b] += c * row[b];
  }
}

/// The extremes of the dense symmetric A by lanczos_extremes.
ExtremeEigen dense_extremes(const std::vector<double>& A, int d, double tol) {
  return lanczos_extremes([&](const double* x, double* y) { dense_symmetric_product(A.data(), d, x, y); }, d, tol);
}

/// Per-thread scratch for the dense route (reused: eps_Jacobi calls it for every draw).
std::vector<double>& dense_scratch(int d) {
  thread_local std::vector<double> A;
  A.assign(std::size_t(d) * d, 0.0);
  return A;
}

}  // namespace

double op_norm_lanczos(const JacobianAt& j, double tol) {
  if (dense_is_cheaper(j.d, j.K)) {
    std::vector<double>& A = dense_scratch(j.d);
    add_dense_jacobian(j, 1.0, A.data());
    const ExtremeEigen e = dense_extremes(A, j.d, tol);
    return std::max(std::abs(e.lo), std::abs(e.hi));
  }
  const ExtremeEigen e = lanczos_extremes([&](const double* x, double* y) { apply_jacobian(j, x, y); }, j.d, tol);
  return std::max(std::abs(e.lo), std::abs(e.hi));
}

double op_norm_difference(const JacobianAt& ja, const JacobianAt& jb, double tol) {
  GMMDIFF_EXPECTS(ja.d == jb.d, "op_norm_difference: d = ", ja.d, " and ", jb.d);
  if (dense_is_cheaper(ja.d, ja.K + jb.K)) {
    std::vector<double>& A = dense_scratch(ja.d);
    add_dense_jacobian(ja, 1.0, A.data());
    add_dense_jacobian(jb, -1.0, A.data());
    const ExtremeEigen e = dense_extremes(A, ja.d, tol);
    return std::max(std::abs(e.lo), std::abs(e.hi));
  }
  std::vector<double> tmp(ja.d);
  const ExtremeEigen e = lanczos_extremes(
      [&](const double* x, double* y) {
        apply_jacobian(ja, x, y);
        apply_jacobian(jb, x, tmp.data());
        for (int i = 0; i < ja.d; ++i) y[i] -= tmp[i];
      },
      ja.d, tol);
  return std::max(std::abs(e.lo), std::abs(e.hi));
}

std::vector<double> dense_jacobian(const JacobianAt& j) {
  std::vector<double> J(std::size_t(j.d) * j.d, 0.0);
  add_dense_jacobian(j, 1.0, J.data());
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
