// The proofs' quantities (gmmdiff/quantities.hpp, host/bounds/score_jacobian.hpp): ||J||_op by
// Lanczos against a dense d x d eigenproblem (isotropic with d < K and d >= K, diagonal), the
// difference of two Jacobians likewise; E tr(I + J_t) over X_t ~ p_t for a two-point mixture
// against 1-D quadrature and the exact second moment; K = 1, where every quantity is a constant,
// over the sampler's own Y_t; eps_Jacobi exactly 0 (bias), undefined (gaussian), eps times the mean
// ||J_t|| (scale) and the perturbed mixture's against dense matrices (weights, means).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "bounds/score_jacobian.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/quantities.hpp"
#include "util/quadrature_util.hpp"
#include "util/model_util.hpp"

using namespace gmmdiff;

namespace {

constexpr double kLanczosRelTol = 1e-9;  // Lanczos' extreme eigenvalues against Jacobi on the dense J
constexpr double kSigmas = 5.0;          // Monte Carlo means within 5 standard errors
constexpr double kExactTol = 1e-12;

Mixture random_mixture(bool diagonal, int d, int K, uint64_t seed, double spread = 1.5) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> N01;
  std::uniform_real_distribution<double> U(0.4, 1.4);
  Mixture m;
  m.K = K;
  m.d = d;
  for (int k = 0; k < K; ++k) {
    m.weights.push_back(U(g));
    for (int j = 0; j < d; ++j) m.means.push_back(spread * N01(g));
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

using test::schedule;

bounds::JacobianAt jacobian(const Mixture& m, const Schedule& s, int t, const std::vector<double>& y) {
  SampleOptions o;
  const bounds::JacobianStep js = bounds::jacobian_step(step_coeffs(m, s, t, o, {}), m.d, m.K);
  bounds::JacobianAt ja;
  bounds::jacobian_at(js, y.data(), ja);
  return ja;
}

double dense_op_norm(const std::vector<double>& A, int d) {
  const std::vector<double> ev = bounds::symmetric_eigenvalues(A, d);
  return std::max(std::abs(ev.front()), std::abs(ev.back()));
}

}  // namespace

TEST(Quantities, LanczosOperatorNormAgreesWithTheDenseEigenproblem) {
  struct Case {
    bool diagonal;
    int d, K, t;
  };
  const Schedule s = schedule("linear", 40);
  for (const Case c : {Case{false, 3, 12, 5}, Case{false, 12, 3, 20}, Case{false, 20, 20, 2}, Case{false, 40, 7, 30},
                       Case{true, 6, 4, 10}, Case{true, 15, 30, 3}, Case{false, 1, 5, 8}}) {
    const Mixture m = random_mixture(c.diagonal, c.d, c.K, 100 + c.d * 7 + c.K);
    std::mt19937_64 g(c.d);
    std::normal_distribution<double> N01;
    for (int pt = 0; pt < 5; ++pt) {
      std::vector<double> y(c.d);
      for (double& v : y) v = 1.2 * N01(g);
      const bounds::JacobianAt ja = jacobian(m, s, c.t, y);
      const double want = dense_op_norm(bounds::dense_jacobian(ja), c.d);
      std::ostringstream what;
      what << (c.diagonal ? "diagonal" : "isotropic") << " d " << c.d << " K " << c.K << " t " << c.t << " point " << pt;
      EXPECT_NEAR(bounds::op_norm_lanczos(ja), want, kLanczosRelTol * want) << what.str();
      if (!c.diagonal) {
        EXPECT_NEAR(bounds::op_norm(ja), want, kLanczosRelTol * want) << what.str();
      }
      // the difference with a perturbed mixture's Jacobian at the same point
      Mixture p = m;
      for (double& mu : p.means) mu += 0.3 * N01(g);
      const bounds::JacobianAt jb = jacobian(p, s, c.t, y);
      std::vector<double> D = bounds::dense_jacobian(jb);
      const std::vector<double> Ja = bounds::dense_jacobian(ja);
      for (std::size_t i = 0; i < D.size(); ++i) D[i] -= Ja[i];
      const double want_diff = dense_op_norm(D, c.d);
      EXPECT_NEAR(bounds::op_norm_difference(jb, ja), want_diff, kLanczosRelTol * std::max(1.0, want_diff)) << what.str();
    }
  }
}

TEST(Quantities, TwoPointMeanTraceAgainstQuadratureAndTheSecondMoment) {
  // Means +-r e_1, sd 1, equal weights: tr(I + J_t) = abar_t w_1 w_2 |2 r|^2 with
  // w_1(z) = 1 / (1 + exp(-2 sqrt(abar_t) r z)), z the coordinate along e_1 of X_t
  // ~ (N(sqrt(abar_t) r, 1) + N(-sqrt(abar_t) r, 1)) / 2: a 1-D integral.
  PresetParams pp;
  pp.name = "two-point";
  pp.d = 6;
  pp.radius = 2.5;
  const Mixture m = make_preset(pp);
  const Schedule s = schedule("lcw", 64);
  SampleOptions o;
  o.seed = 5;
  InspectOptions io;
  io.n = 4000;
  io.sampler = false;
  io.steps = {40, 25, 12};
  auto be = make_backend("cpu", 2);
  const Inspection ins = inspect_quantities(m, s, o, io, *be);
  ASSERT_EQ(ins.rows.size(), 3u);
  for (const InspectRow& row : ins.rows) {
    const double a = s.abar[row.t], r = pp.radius, sa = std::sqrt(a);
    using test::LD;
    auto integrand = [&](LD z) -> LD {
      const LD p = 0.5L * (std::exp(-0.5L * (z - sa * r) * (z - sa * r)) + std::exp(-0.5L * (z + sa * r) * (z + sa * r))) /
                   std::sqrt(2 * 3.141592653589793238L);
      const LD w1 = 1 / (1 + std::exp(-2 * sa * r * z));
      return p * 4 * a * r * r * w1 * (1 - w1);
    };
    const double want = static_cast<double>(test::integrate(integrand, -sa * r - 12, sa * r + 12, 64));
    const QuantitySummary& tr = row.forward.trace;
    EXPECT_NEAR(tr.mean, want, kSigmas * tr.se) << "t " << row.t << " abar " << a;
    EXPECT_LE(tr.mean, tr.p99);
    EXPECT_LE(tr.p99, tr.p999);
    EXPECT_LE(tr.p999, tr.max);
    EXPECT_LE(tr.max, a * r * r + 1e-12) << "w_1 w_2 <= 1/4";
    EXPECT_NEAR(row.forward.sq.mean, row.second_moment_exact, kSigmas * row.forward.sq.se) << "t " << row.t;
    EXPECT_NEAR(row.second_moment_exact, a * r * r + m.d, 1e-9);
    EXPECT_NEAR(row.log_KT, std::log(2.0 * 64), kExactTol);
    EXPECT_EQ(row.sampler.trace.n, 0u) << "no sampler run asked for";
  }
}

TEST(Quantities, GaussianTargetQuantitiesAreConstantOverTheSamplersOwnPoints) {
  // K = 1, N(mu, s^2 I): J_t = -I / v_t everywhere, so tr(I + J_t) = d (1 - 1/v_t) and
  // ||J_t||_op = 1 / v_t at every point, X_t or Y_t.
  PresetParams pp;
  pp.name = "gaussian";
  pp.d = 4;
  pp.sd = {0.5};
  pp.radius = 1.0;
  const Mixture m = make_preset(pp);
  const Schedule s = schedule("lcw", 32);
  SampleOptions o;
  o.precision = Precision::FP64;
  InspectOptions io;
  io.n = 300;
  auto be = make_backend("cpu", 2);
  const Inspection ins = inspect_quantities(m, s, o, io, *be);
  ASSERT_EQ(ins.rows.size(), 31u);  // T - stop <= 32: every step
  EXPECT_EQ(ins.rows.front().t, 32);
  EXPECT_EQ(ins.rows.back().t, 2);
  for (const InspectRow& row : ins.rows) {
    const double v = s.abar[row.t] * 0.25 + s.one_minus_abar[row.t];
    for (const InspectPopulation* p : {&row.forward, &row.sampler}) {
      ASSERT_EQ(p->trace.n, 300u);
      EXPECT_NEAR(p->trace.mean, 4 * (1 - 1 / v), 1e-9 * 4 / v) << "t " << row.t;
      EXPECT_NEAR(p->trace.max, 4 * (1 - 1 / v), 1e-9 * 4 / v) << "t " << row.t;
      EXPECT_NEAR(p->opnorm.mean, 1 / v, 1e-9 / v) << "t " << row.t;
      EXPECT_NEAR(p->opnorm.max, 1 / v, 1e-9 / v) << "t " << row.t;
    }
  }
  EXPECT_EQ(ins.sampler.n, 300u);
}

TEST(Quantities, BadStepsAndSizes) {
  const Mixture m = random_mixture(false, 2, 2, 1);
  const Schedule s = schedule("lcw", 16);
  SampleOptions o;
  auto be = make_backend("cpu", 1);
  InspectOptions io;
  io.steps = {1};  // stop 1: the sampler takes t = 2..16
  EXPECT_THROW(inspect_quantities(m, s, o, io, *be), Error);
  io.steps = {17};
  EXPECT_THROW(inspect_quantities(m, s, o, io, *be), Error);
  io.steps = {};
  io.n = 1;
  EXPECT_THROW(inspect_quantities(m, s, o, io, *be), Error);
  EXPECT_EQ(default_inspect_steps(200, 1, 5), (std::vector<int>{200, 151, 101, 52, 2}));
}

// lanczos_extremes on spectra that stress its small tridiagonal eigenproblem (Laguerre's iteration
// with a bisection fallback): equal, clustered and repeated extremes, an extreme at 0, magnitudes
// near the ends of double's range and a dynamic range of 1e16, each in a random orthonormal basis.
TEST(Quantities, LanczosExtremesOnHardSpectra) {
  constexpr double kTol = 1e-12;      // the Lanczos residual tolerance asked for
  constexpr double kRelErr = 1e-9;    // against the known extremes, relative to the largest |eigenvalue|
  constexpr int kN = 24;
  std::mt19937_64 g(77);
  std::normal_distribution<double> N01;
  // A random orthonormal basis (Gram-Schmidt twice on Gaussian vectors).
  std::vector<double> Q(std::size_t(kN) * kN);
  for (double& q : Q) q = N01(g);
  for (int i = 0; i < kN; ++i)
    for (int pass = 0; pass < 2; ++pass) {
      double* qi = Q.data() + std::size_t(i) * kN;
      for (int j = 0; j < i; ++j) {
        const double* qj = Q.data() + std::size_t(j) * kN;
        double c = 0;
        for (int a = 0; a < kN; ++a) c += qi[a] * qj[a];
        for (int a = 0; a < kN; ++a) qi[a] -= c * qj[a];
      }
      double n2 = 0;
      for (int a = 0; a < kN; ++a) n2 += qi[a] * qi[a];
      for (int a = 0; a < kN; ++a) qi[a] /= std::sqrt(n2);
    }
  struct Spectrum {
    const char* name;
    std::vector<double> ev;
  };
  std::vector<Spectrum> cases;
  auto fill = [&](const char* name, auto f) {
    Spectrum s{name, std::vector<double>(kN)};
    for (int i = 0; i < kN; ++i) s.ev[i] = f(i);
    cases.push_back(s);
  };
  fill("distinct", [](int i) { return -1.0 + 3.0 * std::fmod(0.618034 * (i + 1), 1.0); });
  fill("all equal", [](int) { return 3.0; });
  fill("top cluster", [](int i) { return i < 3 ? 1.0 + 1e-10 * i : -1.0 + 0.04 * i; });
  fill("repeated +-2", [](int i) { return i < 5 ? 2.0 : i < 10 ? -2.0 : 0.1 * (i - 15); });
  fill("top at 0", [](int i) { return -0.1 * i; });
  fill("bottom at 0", [](int i) { return 0.1 * i; });
  fill("tiny", [](int i) { return 1e-150 * (1 + i); });
  fill("huge", [](int i) { return -1e150 * (1 + 0.5 * i); });
  fill("range 1e16", [](int i) { return std::pow(10.0, -8.0 + 16.0 * i / (kN - 1)); });
  for (const Spectrum& c : cases) {
    // A = Q^T diag(ev) Q, applied as a product.
    auto matvec = [&](const double* x, double* y) {
      std::vector<double> z(kN);
      for (int i = 0; i < kN; ++i) {
        double t = 0;
        for (int a = 0; a < kN; ++a) t += Q[std::size_t(i) * kN + a] * x[a];
        z[i] = c.ev[i] * t;
      }
      for (int a = 0; a < kN; ++a) {
        y[a] = 0;
        for (int i = 0; i < kN; ++i) y[a] += Q[std::size_t(i) * kN + a] * z[i];
      }
    };
    const double lo = *std::min_element(c.ev.begin(), c.ev.end()), hi = *std::max_element(c.ev.begin(), c.ev.end());
    const double scale = std::max(std::abs(lo), std::abs(hi));
    const bounds::ExtremeEigen e = bounds::lanczos_extremes(matvec, kN, kTol);
    EXPECT_NEAR(e.lo, lo, kRelErr * scale) << c.name << ": smallest, " << e.iterations << " iterations";
    EXPECT_NEAR(e.hi, hi, kRelErr * scale) << c.name << ": largest, " << e.iterations << " iterations";
  }
}

TEST(EpsJacobi, ExactUndefinedAndMeasured) {
  const Mixture m = random_mixture(false, 5, 4, 21);
  const Schedule s = schedule("lcw", 48);
  SampleOptions o;
  o.seed = 9;
  EpsJacobiOptions eo;
  eo.max_steps = 6;
  eo.samples = 20;
  o.score_error = {ScoreErrorKind::Bias, 0.4};
  EpsJacobi e = measure_eps_jacobi(m, s, o, eo);
  EXPECT_TRUE(e.defined);
  EXPECT_TRUE(e.exact);
  EXPECT_EQ(e.value, 0.0);
  o.score_error = {ScoreErrorKind::Gaussian, 0.4};
  e = measure_eps_jacobi(m, s, o, eo);
  EXPECT_FALSE(e.defined);
  EXPECT_NE(e.text().find("undefined"), std::string::npos);

  // scale: eps f(t) ||J_t(X_t)||, the mean over the same draws, with the dense eigenproblem;
  // means and weights: ||J_t^model(X_t) - J_t(X_t)|| with both Jacobians dense.
  std::vector<double> cum(m.K);
  double c = 0;
  for (int k = 0; k < m.K; ++k) cum[k] = (c += m.weights[k]);
  cum[m.K - 1] = 1;
  for (const ScoreErrorKind kind : {ScoreErrorKind::Scale, ScoreErrorKind::Means, ScoreErrorKind::Weights}) {
    for (const ErrorProfile prof : {ErrorProfile::Uniform, ErrorProfile::BackLoaded}) {
      o.score_error = ScoreError{};
      o.score_error.kind = kind;
      o.score_error.eps = 0.3;
      o.score_error.profile = prof;
      e = measure_eps_jacobi(m, s, o, eo);
      const ScorePlan plan(m, s, o);
      double want = 0;
      const std::vector<int> ts = eps_steps(s, o.stop, eo.max_steps);
      for (int t : ts) {
        for (int i = 0; i < eo.samples; ++i) {
          std::vector<double> x(m.d);
          forward_draw(m, s, t, o.seed, i, cum, x.data());
          const std::vector<double> J = bounds::dense_jacobian(jacobian(m, s, t, x));
          if (kind == ScoreErrorKind::Scale) {
            want += 0.3 * plan.factor(t) * dense_op_norm(J, m.d);
          } else {
            std::vector<double> D = bounds::dense_jacobian(jacobian(plan.model(t), s, t, x));
            for (std::size_t q = 0; q < D.size(); ++q) D[q] -= J[q];
            want += dense_op_norm(D, m.d);
          }
        }
      }
      want /= double(ts.size()) * eo.samples;
      std::ostringstream what;
      what << to_string(kind) << " " << to_string(prof);
      EXPECT_TRUE(e.defined && !e.exact) << what.str();
      EXPECT_NEAR(e.value, want, std::max(kLanczosRelTol, eo.lanczos_tol) * want) << what.str();
      EXPECT_GT(e.se, 0.0) << what.str();
    }
  }
}

// Where Lanczos stops before spanning R^d (d = 40), each draw's norm is within lanczos_tol of the
// dense eigenproblem's, so the mean is too; a tolerance near rounding agrees to rounding.
TEST(EpsJacobi, LanczosToleranceBoundsEachNorm) {
  constexpr int kD = 40, kK = 24;
  const Mixture m = random_mixture(false, kD, kK, 33, /*spread=*/0.3);  // means ~2.7 apart: mixed posteriors
  const Schedule s = schedule("lcw", 32);
  SampleOptions o;
  o.seed = 4;
  o.score_error = ScoreError{};
  o.score_error.kind = ScoreErrorKind::Means;
  o.score_error.eps = 0.4;
  EpsJacobiOptions loose;
  loose.max_steps = 3;
  loose.samples = 6;
  EpsJacobiOptions tight = loose;
  tight.lanczos_tol = 1e-12;
  const EpsJacobi a = measure_eps_jacobi(m, s, o, loose), b = measure_eps_jacobi(m, s, o, tight);
  const ScorePlan plan(m, s, o);
  std::vector<double> cum(m.K);
  double c = 0;
  for (int k = 0; k < m.K; ++k) cum[k] = (c += m.weights[k]);
  cum[m.K - 1] = 1;
  double want = 0;
  const std::vector<int> ts = eps_steps(s, o.stop, loose.max_steps);
  for (int t : ts)
    for (int i = 0; i < loose.samples; ++i) {
      std::vector<double> x(m.d);
      forward_draw(m, s, t, o.seed, i, cum, x.data());
      const std::vector<double> J = bounds::dense_jacobian(jacobian(m, s, t, x));
      std::vector<double> D = bounds::dense_jacobian(jacobian(plan.model(t), s, t, x));
      for (std::size_t q = 0; q < D.size(); ++q) D[q] -= J[q];
      want += dense_op_norm(D, m.d);
    }
  want /= double(ts.size()) * loose.samples;
  EXPECT_GT(want, 1e-3) << "d " << kD << " K " << kK;  // a norm well away from 0
  EXPECT_NEAR(a.value, want, loose.lanczos_tol * want) << "d " << kD << " K " << kK << " tol " << loose.lanczos_tol;
  EXPECT_NEAR(b.value, want, kLanczosRelTol * want) << "d " << kD << " K " << kK << " tol " << tight.lanczos_tol;
  for (double bad : {0.0, 1.0, -1e-7}) {
    EpsJacobiOptions eo = loose;
    eo.lanczos_tol = bad;
    EXPECT_THROW(measure_eps_jacobi(m, s, o, eo), Error) << "lanczos_tol " << bad;
  }
}

TEST(Quantities, RowsOnlyJacobianGivesTheGramsTraceAndNorm) {
  // jacobian_at without the K x K Gram matrix (what inspect and eps_Jacobi use: O(K d) per point)
  // against the full one: the same trace (from the rows instead of tr M) and operator norm.
  constexpr double kRowsRelTol = 1e-12;
  std::mt19937_64 g(5);
  std::normal_distribution<double> N01;
  const Schedule s = schedule("lcw", 64);
  for (const int K : {1, 3, 40})
    for (const int d : {1, 6, 17}) {
      const Mixture m = random_mixture(false, d, K, 300 + K + d);
      SampleOptions o;
      for (const int t : {2, 30, 60}) {
        const bounds::JacobianStep js = bounds::jacobian_step(step_coeffs(m, s, t, o, {}), m.d, m.K);
        std::vector<double> y(d);
        for (double& v : y) v = 1.3 * N01(g);
        bounds::JacobianAt full, rows;
        bounds::jacobian_at(js, y.data(), full);
        bounds::jacobian_at(js, y.data(), rows, /*gram=*/false);
        std::ostringstream what;
        what << "d " << d << " K " << K << " t " << t;
        EXPECT_TRUE(rows.M.empty()) << what.str();
        const double tr = bounds::trace_i_plus_j(full), nf = bounds::op_norm(full);
        EXPECT_NEAR(bounds::trace_i_plus_j(rows), tr, kRowsRelTol * std::max(1.0, std::abs(tr))) << what.str();
        EXPECT_NEAR(bounds::op_norm_lanczos(rows), nf, kLanczosRelTol * std::max(1.0, nf)) << what.str();
      }
    }
}
