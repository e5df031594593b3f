// The Jacobian of the exact score (host/bounds/score_jacobian.hpp) against finite differences of
// the score and of the ddim step map (fp64), its K x K Gram against the rows, log det, trace and
// operator norm against a dense d x d computation, and the s_k = 1 identity of THEORY.md.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "bounds/score_jacobian.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"

using namespace gmmdiff;

namespace {

constexpr double kFdStep = 1e-5;         // central differences: error ~ h^2 |s'''| ~ 1e-10
constexpr double kFdTol = 1e-6;          // on J entries and log det D Phi
constexpr double kGramRelTol = 1e-11;    // the O(K^2) Gram against the rows' Gram
constexpr double kDenseTol = 1e-10;      // trace, operator norm, log det against dense d x d

Mixture mixture(bool diagonal, int d, int K, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> N01;
  std::uniform_real_distribution<double> U(0.3, 1.5);
  Mixture m;
  m.K = K;
  m.d = d;
  for (int k = 0; k < K; ++k) {
    m.weights.push_back(U(g));
    for (int j = 0; j < d; ++j) m.means.push_back(1.5 * N01(g));
  }
  double s = 0;
  for (double w : m.weights) s += w;
  for (double& w : m.weights) w /= s;
  if (diagonal) {
    m.cov = Covariance::Diagonal;
    for (int i = 0; i < K * d; ++i) m.var_diag.push_back(U(g) * U(g));
  } else {
    for (int k = 0; k < K; ++k) m.sd.push_back(U(g));
  }
  validate(m);
  return m;
}

Schedule linear_schedule(int T) {
  ScheduleParams p;
  p.name = "linear";
  p.T = T;
  return make_schedule(p);
}

// log |det A| of a dense n x n matrix by LU with partial pivoting (an independent route).
double lu_logdet(std::vector<double> A, int n, int& sign) {
  sign = 1;
  double ld = 0;
  for (int c = 0; c < n; ++c) {
    int p = c;
    for (int r = c + 1; r < n; ++r)
      if (std::abs(A[r * n + c]) > std::abs(A[p * n + c])) p = r;
    if (p != c) {
      for (int k = 0; k < n; ++k) std::swap(A[c * n + k], A[p * n + k]);
      sign = -sign;
    }
    const double piv = A[c * n + c];
    if (piv < 0) sign = -sign;
    ld += std::log(std::abs(piv));
    for (int r = c + 1; r < n; ++r) {
      const double f = A[r * n + c] / piv;
      for (int k = c; k < n; ++k) A[r * n + k] -= f * A[c * n + k];
    }
  }
  return ld;
}

struct Case {
  bool diagonal;
  int d, K, t;
  uint64_t seed;
  std::string describe() const {
    std::ostringstream os;
    os << (diagonal ? "diagonal" : "isotropic") << " d=" << d << " K=" << K << " t=" << t << " seed=" << seed;
    return os.str();
  }
};

const std::vector<Case> kCases = {
    {false, 4, 3, 10, 1}, {false, 2, 5, 3, 2}, {false, 6, 1, 15, 3}, {true, 4, 3, 10, 4}, {true, 3, 2, 2, 5},
};

}  // namespace

TEST(ScoreJacobian, MatchesFiniteDifferencesOfTheScoreAndTheStepMap) {
  const Schedule s = linear_schedule(20);
  for (const Case& cs : kCases) {
    const Mixture m = mixture(cs.diagonal, cs.d, cs.K, cs.seed);
    SampleOptions o;
    o.sampler = SamplerKind::DDIM;
    const StepCoeffs c = step_coeffs(m, s, cs.t, o, {});
    const bounds::JacobianStep js = bounds::jacobian_step(c, cs.d, cs.K);
    std::mt19937_64 g(cs.seed + 100);
    std::normal_distribution<double> N01;
    for (int pt = 0; pt < 4; ++pt) {
      std::vector<double> y(cs.d);
      for (double& v : y) v = 1.5 * N01(g);
      bounds::JacobianAt ja;
      bounds::jacobian_at(js, y.data(), ja);
      const std::vector<double> J = bounds::dense_jacobian(ja);
      // Finite differences of the exact score (model.hpp) and of the ddim step map.
      const int d = cs.d;
      std::vector<double> Jfd(std::size_t(d) * d), Dphi(std::size_t(d) * d), sp(d), sm(d);
      for (int b = 0; b < d; ++b) {
        std::vector<double> yp = y, ym = y;
        yp[b] += kFdStep;
        ym[b] -= kFdStep;
        exact_score(m, s.abar[cs.t], yp.data(), sp.data());
        exact_score(m, s.abar[cs.t], ym.data(), sm.data());
        for (int a = 0; a < d; ++a) {
          Jfd[a * d + b] = (sp[a] - sm[a]) / (2 * kFdStep);
          // Phi(y) = (y + kappa s(y)) / sqrt(alpha)
          const double pp = c.inv_sqrt_alpha * (yp[a] + c.kappa * sp[a]);
          const double pm = c.inv_sqrt_alpha * (ym[a] + c.kappa * sm[a]);
          Dphi[a * d + b] = (pp - pm) / (2 * kFdStep);
        }
      }
      for (int i = 0; i < d * d; ++i)
        ASSERT_NEAR(J[i], Jfd[i], kFdTol) << cs.describe() << " point " << pt << " entry " << i;
      int sign = 0;
      const double ld_fd = lu_logdet(Dphi, d, sign);
      const bounds::LogDet ld = bounds::log_det_i_plus_kappa_j(ja, c.kappa);
      ASSERT_TRUE(ld.positive_definite) << cs.describe();
      EXPECT_EQ(sign, 1) << cs.describe();
      EXPECT_NEAR(ld.value + d * std::log(c.inv_sqrt_alpha), ld_fd, kFdTol) << cs.describe() << " point " << pt;
    }
  }
}

TEST(ScoreJacobian, GramTraceAndNormAgreeWithTheDenseMatrix) {
  const Schedule s = linear_schedule(20);
  for (const Case& cs : kCases) {
    const Mixture m = mixture(cs.diagonal, cs.d, cs.K, cs.seed);
    SampleOptions o;
    const StepCoeffs c = step_coeffs(m, s, cs.t, o, {});
    const bounds::JacobianStep js = bounds::jacobian_step(c, cs.d, cs.K);
    std::vector<double> y(cs.d, 0.7);
    y[0] = -1.1;
    bounds::JacobianAt ja;
    bounds::jacobian_at(js, y.data(), ja);
    const int d = cs.d, K = cs.K;
    if (!cs.diagonal) {  // the O(K^2) route against the rows' Gram
      double scale = 0;
      for (double v : ja.M) scale = std::max(scale, std::abs(v));
      for (int i = 0; i < K; ++i)
        for (int k = 0; k < K; ++k) {
          double g = 0;
          for (int j = 0; j < d; ++j) g += ja.U[i * d + j] * ja.U[k * d + j];
          EXPECT_NEAR(ja.M[i * K + k], g, kGramRelTol * std::max(1.0, scale)) << cs.describe();
        }
    }
    const std::vector<double> J = bounds::dense_jacobian(ja);
    const std::vector<double> ev = bounds::symmetric_eigenvalues(J, d);
    double tr = d, op = 0;
    for (double e : ev) {
      tr += e;
      op = std::max(op, std::abs(e));
    }
    EXPECT_NEAR(bounds::trace_i_plus_j(ja), tr, kDenseTol * d) << cs.describe();
    EXPECT_NEAR(bounds::op_norm(ja), op, kDenseTol * std::max(1.0, op)) << cs.describe();
    // log det(I + kappa J), also for a kappa so large that I + kappa J is indefinite.
    for (double kappa : {0.05, 0.4, 3.0, 30.0}) {
      std::vector<double> A = J;
      for (double& v : A) v *= kappa;
      for (int i = 0; i < d; ++i) A[i * d + i] += 1.0;
      bool pd = true;
      for (int i = 0; i < d; ++i) pd = pd && 1.0 + kappa * ev[i] > 0;
      int sign = 0;
      const double want = lu_logdet(A, d, sign);
      const bounds::LogDet got = bounds::log_det_i_plus_kappa_j(ja, kappa);
      EXPECT_EQ(got.positive_definite, pd) << cs.describe() << " kappa " << kappa;
      if (pd && got.positive_definite) {
        EXPECT_NEAR(got.value, want, kDenseTol * d) << cs.describe() << " kappa " << kappa;
      }
    }
  }
}

TEST(ScoreJacobian, UnitVarianceTraceIsThePosteriorVarianceOfTheMean) {
  // THEORY.md: for s_k = 1, tr(I + J_t(x)) = abar_t sum_k w_k |mu_k - mu_bar_w|^2.
  const Schedule s = linear_schedule(30);
  Mixture m = mixture(false, 5, 4, 9);
  for (double& sd : m.sd) sd = 1.0;
  SampleOptions o;
  for (int t : {1, 7, 30}) {
    const bounds::JacobianStep js = bounds::jacobian_step(step_coeffs(m, s, t, o, {}), m.d, m.K);
    const std::vector<double> y = {0.3, -0.2, 1.0, 0.5, -1.5};
    bounds::JacobianAt ja;
    bounds::jacobian_at(js, y.data(), ja);
    std::vector<double> mbar(m.d, 0.0);
    for (int k = 0; k < m.K; ++k)
      for (int j = 0; j < m.d; ++j) mbar[j] += ja.w[k] * m.mean(k)[j];
    double want = 0;
    for (int k = 0; k < m.K; ++k)
      for (int j = 0; j < m.d; ++j) want += ja.w[k] * (m.mean(k)[j] - mbar[j]) * (m.mean(k)[j] - mbar[j]);
    want *= s.abar[t];
    EXPECT_NEAR(bounds::trace_i_plus_j(ja), want, 1e-12 * std::max(1.0, want)) << "t = " << t;
  }
}
