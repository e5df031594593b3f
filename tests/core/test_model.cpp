// The mixture model: presets, JSON, validation, and the exact score against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/sampler.hpp"

using namespace gmmdiff;

namespace {
constexpr double kFdStep = 1e-5;         // central differences in float64
constexpr double kFdRelTol = 1e-6;       // |fd - score| / (1 + |score|)
constexpr double kWeightsSumTolF32 = 1e-5;
constexpr double kWeightsSumTolF64 = 1e-12;

Mixture diag_model(int K, int d, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> U(0.3, 2.0);
  std::normal_distribution<double> N(0, 1.5);
  Mixture m;
  m.K = K;
  m.d = d;
  m.cov = Covariance::Diagonal;
  for (int k = 0; k < K; ++k) m.weights.push_back(U(g));
  double s = 0;
  for (double w : m.weights) s += w;
  for (double& w : m.weights) w /= s;
  for (int i = 0; i < K * d; ++i) {
    m.means.push_back(N(g));
    m.var_diag.push_back(U(g));
  }
  validate(m);
  return m;
}

Mixture iso_model(int K, int d, uint64_t seed) {
  PresetParams p;
  p.name = "random-sphere";
  p.d = d;
  p.K = K;
  p.radius = 2.0;
  p.seed = seed;
  p.sd.clear();
  for (int k = 0; k < K; ++k) p.sd.push_back(0.5 + 0.25 * k);
  return make_preset(p);
}

std::string write(const std::string& name, const std::string& text) {
  const std::string p = testing::TempDir() + "/" + name;
  std::ofstream(p) << text;
  return p;
}

std::string error_of(const std::string& json) {
  try {
    load_model_json(write("m.json", json));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Model, ScoreMatchesFiniteDifferences) {
  std::mt19937_64 g(7);
  std::normal_distribution<double> N(0, 1);
  for (int diag = 0; diag < 2; ++diag)
    for (double abar : {1e-4, 0.1, 0.5, 0.99, 1.0}) {
      const Mixture m = diag ? diag_model(3, 5, 11) : iso_model(3, 5, 11);
      const Mixture f = forward_marginal(m, abar);
      for (int trial = 0; trial < 5; ++trial) {
        SCOPED_TRACE(testing::Message() << "diag=" << diag << " abar=" << abar << " trial=" << trial);
        std::vector<double> x(m.d), s(m.d);
        for (double& v : x) v = 2 * N(g);
        exact_score(m, abar, x.data(), s.data());
        for (int j = 0; j < m.d; ++j) {
          std::vector<double> xp = x, xm = x;
          xp[j] += kFdStep;
          xm[j] -= kFdStep;
          const double fd = (log_density(f, xp.data()) - log_density(f, xm.data())) / (2 * kFdStep);
          EXPECT_NEAR(fd, s[j], kFdRelTol * (1 + std::fabs(s[j]))) << "j=" << j;
        }
      }
    }
}

// The product form of the step (StepCoeffs + step_math) reproduces the direct score.
TEST(Model, ProductFormMatchesDirectScore) {
  std::mt19937_64 g(3);
  std::normal_distribution<double> N(0, 1);
  for (int kind = 0; kind < 3; ++kind) {
    Mixture m = kind == 2 ? diag_model(4, 6, 5) : iso_model(4, 6, 5);
    if (kind == 0) m.sd.assign(4, 0.8);  // uniform variances
    Schedule s;
    s.T = 1;
    s.alpha = {1.0, 0.3};
    s.abar = {1.0, 0.3};
    s.one_minus_abar = {0.0, 0.7};
    const StepCoeffs c = step_coeffs(m, s, 1, SampleOptions{}, {});
    const auto mode = c.diagonal ? detail::QMode::Diagonal : (c.uniform_q ? detail::QMode::Uniform : detail::QMode::Isotropic);
    EXPECT_EQ(kind == 0, c.uniform_q);
    for (int trial = 0; trial < 5; ++trial) {
      SCOPED_TRACE(testing::Message() << "kind=" << kind << " trial=" << trial);
      std::vector<double> y(m.d), want(m.d), w_want(m.K);
      for (double& v : y) v = 1.5 * N(g);
      exact_score(m, 0.3, y.data(), want.data(), w_want.data());
      std::vector<double> G1(m.K, 0), G2(m.K, 0);
      double rsq = 0;
      for (int j = 0; j < m.d; ++j) rsq += y[j] * y[j];
      for (int k = 0; k < m.K; ++k)
        for (int j = 0; j < m.d; ++j) {
          G1[k] += y[j] * c.P[k * m.d + j];
          if (c.diagonal) G2[k] += y[j] * y[j] * c.Q[k * m.d + j];
        }
      const double wq = detail::posterior_weights_row<double>(G1.data(), G2.data(), rsq, c.bias.data(), c.Q.data(), m.K, mode);
      for (int k = 0; k < m.K; ++k) EXPECT_NEAR(G1[k], w_want[k], 1e-12) << "k=" << k;
      for (int j = 0; j < m.d; ++j) {
        double s1 = 0, s2 = 0;
        for (int k = 0; k < m.K; ++k) {
          s1 += G1[k] * c.P[k * m.d + j];
          if (c.diagonal) s2 += G1[k] * c.Q[k * m.d + j];
        }
        if (!c.diagonal) s2 = mode == detail::QMode::Uniform ? c.Q[0] : wq;
        EXPECT_NEAR(detail::score_coord<double>(y[j], s1, s2), want[j], 1e-12 * (1 + std::fabs(want[j]))) << "j=" << j;
      }
    }
  }
}

TEST(Model, PosteriorWeightsStayFiniteAtExtremes) {
  // |mu| = 1e4, abar = 1 - 1e-16, K = 4096: weights finite, non-negative, summing to 1.
  for (int K : {2, 4096})
    for (double abar : {1.0 - 1e-16, 0.5, 1e-12}) {
      SCOPED_TRACE(testing::Message() << "K=" << K << " abar=" << abar);
      PresetParams p;
      p.name = K == 2 ? "two-point" : "random-sphere";
      p.d = 8;
      p.K = K;
      p.radius = 1e4;
      const Mixture m = make_preset(p);
      Schedule s;
      s.T = 1;
      s.alpha = {1.0, abar};
      s.abar = {1.0, abar};
      s.one_minus_abar = {0.0, abar == 1.0 - 1e-16 ? 1.1102230246251565e-16 : 1 - abar};
      const StepCoeffs c = step_coeffs(m, s, 1, SampleOptions{}, {});
      for (double ymag : {0.0, 1.0, 1e4}) {
        std::vector<double> G64(K);
        std::vector<float> G32(K), bias32(c.bias.begin(), c.bias.end()), Q32(c.Q.begin(), c.Q.end());
        for (int k = 0; k < K; ++k) {
          double g = 0;
          for (int j = 0; j < m.d; ++j) g += (j == 0 ? ymag : 0.3) * c.P[k * m.d + j];
          G64[k] = g;
          G32[k] = static_cast<float>(g);
        }
        const auto mode = c.uniform_q ? detail::QMode::Uniform : detail::QMode::Isotropic;
        detail::posterior_weights_row<double>(G64.data(), nullptr, 0.0, c.bias.data(), c.Q.data(), K, mode);
        detail::posterior_weights_row<float>(G32.data(), nullptr, 0.0f, bias32.data(), Q32.data(), K, mode);
        double s64 = 0, s32 = 0;
        for (int k = 0; k < K; ++k) {
          ASSERT_TRUE(std::isfinite(G64[k]) && G64[k] >= 0) << "k=" << k;
          ASSERT_TRUE(std::isfinite(G32[k]) && G32[k] >= 0) << "k=" << k;
          s64 += G64[k];
          s32 += G32[k];
        }
        EXPECT_NEAR(s64, 1.0, kWeightsSumTolF64) << "ymag=" << ymag;
        EXPECT_NEAR(s32, 1.0, kWeightsSumTolF32) << "ymag=" << ymag;
      }
    }
}

TEST(Model, Presets) {
  PresetParams p;
  p.name = "simplex";
  p.d = 5;
  p.K = 6;
  p.radius = 3;
  const Mixture s = make_preset(p);
  double dist0 = -1;
  for (int a = 0; a < s.K; ++a) {
    double n2 = 0;
    for (int j = 0; j < s.d; ++j) n2 += s.mean(a)[j] * s.mean(a)[j];
    EXPECT_NEAR(std::sqrt(n2), 3.0, 1e-12) << "a=" << a;
    for (int b = a + 1; b < s.K; ++b) {
      double d2 = 0;
      for (int j = 0; j < s.d; ++j) d2 += (s.mean(a)[j] - s.mean(b)[j]) * (s.mean(a)[j] - s.mean(b)[j]);
      if (dist0 < 0) dist0 = d2;
      EXPECT_NEAR(d2, dist0, 1e-10) << a << "," << b;
    }
  }
  p.K = 7;
  EXPECT_THROW(make_preset(p), Error);  // K > d + 1
  p.name = "random-sphere";
  p.K = 10;
  p.seed = 4;
  const Mixture r1 = make_preset(p), r2 = make_preset(p);
  EXPECT_EQ(r1.means, r2.means);
  EXPECT_NEAR(r1.max_mean_norm(), 3.0, 1e-12);
  p.seed = 5;
  EXPECT_NE(make_preset(p).means, r1.means);
  p.name = "two-point";
  p.K = 0;
  const Mixture t = make_preset(p);
  EXPECT_EQ(t.K, 2);
  EXPECT_EQ(t.mean(1)[0], -3.0);
  p.name = "bogus";
  EXPECT_THROW(make_preset(p), Error);
}

TEST(Model, JsonLoadsAndRoundTrips) {
  Mixture m = load_model_json(write("ok.json", R"({"weights": [0.25, 0.75], "means": [[1, 2], [3, 4]], "sd": [1, 0.5]})"));
  EXPECT_EQ(m.K, 2);
  EXPECT_EQ(m.d, 2);
  EXPECT_EQ(m.sd[1], 0.5);
  const std::string p = testing::TempDir() + "/saved.json";
  save_model_json(m, p);
  Mixture r = load_model_json(p);
  EXPECT_EQ(r.means, m.means);
  EXPECT_EQ(r.weights, m.weights);
  // means from .npy beside the JSON, diagonal variances
  std::vector<double> mu = {0, 1, 2, 3, 4, 5};
  write_npy(testing::TempDir() + "/mu.npy", mu.data(), 2, 3);
  m = load_model_json(write("npy.json", R"({"weights": [0.5, 0.5], "means_npy": "mu.npy", "var_diag": [[1,2,3],[1,1,1]]})"));
  EXPECT_EQ(m.cov, Covariance::Diagonal);
  EXPECT_EQ(m.mean(1)[2], 5.0);
  EXPECT_EQ(m.var(0, 2), 3.0);
}

TEST(Model, JsonBadInputNamesTheProblem) {
  struct Case { const char* json; const char* needle; };
  const Case cases[] = {
      {"{\"weights\": [1], \"means\": [[0]]", "malformed"},
      {R"({"means": [[0, 1]]})", "weights"},
      {R"({"weights": [0.5, 0.5], "means": [[0, 1]]})", "rows"},
      {R"({"weights": [1.5, -0.5], "means": [[0], [1]]})", "positive"},
      {R"({"weights": [0, 1], "means": [[0], [1]]})", "positive"},
      {R"({"weights": [0.5, 0.5], "means": [[0], [1]], "sd": [1, 0]})", "sd"},
      {R"({"weights": [0.5, 0.6], "means": [[0], [1]]})", "normalize-weights"},
      {R"({"weights": [1], "means": [[0, 1], [2]]})", "row 0"},
      {R"({"weights": [1], "means": [[0, 1e999]]})", "finite"},
      {R"({"weights": [1], "means": [[0, 1]], "colour": 3})", "unknown key"},
      {R"({"weights": [1], "means": [[0, 1]], "sd": [1, 2]})", "sd"},
      {R"({"weights": [1], "means": [[0, 1]], "var_diag": [[1]]})", "var_diag"},
      {R"({"weights": [1], "means": []})", "means"},
      {R"({"weights": [1], "means_npy": "missing.npy"})", "missing.npy"},
      {R"([1, 2])", "object"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.json);
    EXPECT_NE(e.find(c.needle), std::string::npos) << "json: " << c.json << "\nerror: " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  ModelOptions norm;
  norm.normalize_weights = true;
  const Mixture m = load_model_json(write("n.json", R"({"weights": [1, 3], "means": [[0], [1]]})"), norm);
  EXPECT_DOUBLE_EQ(m.weights[1], 0.75);
}

// Issue 15: a key given twice is refused with its name (the JSON library would keep the last one).
TEST(Model, DuplicateKeysAreRefusedWithTheirName) {
  const std::string e = error_of(R"({"weights": [0.5, 0.5], "means": [[0], [1]], "weights": [0.9, 0.1]})");
  EXPECT_NE(e.find("duplicate key \"weights\""), std::string::npos) << e;
}

// Issue 15: an absolute means_npy / var_diag_npy path is used as it is (it was joined to the
// model's folder: "dir//abs/path").
TEST(Model, AbsoluteNpyPathsAreTakenAsTheyAre) {
  const std::string dir = testing::TempDir() + "/abs_npy_model";
  std::filesystem::create_directories(dir + "/sub");
  const std::vector<double> mu = {0, 1, 2, 3}, var = {1, 2, 3, 4};
  write_npy(dir + "/mu.npy", mu.data(), 2, 2);
  write_npy(dir + "/var.npy", var.data(), 2, 2);
  const std::string json = dir + "/sub/m.json";
  std::ofstream(json) << R"({"weights": [0.5, 0.5], "means_npy": ")" << dir << R"(/mu.npy", "var_diag_npy": ")" << dir
                      << R"(/var.npy"})";
  std::vector<std::string> files;
  ModelOptions opt;
  opt.files_read = &files;
  const Mixture m = load_model_json(json, opt);
  EXPECT_EQ(m.mean(1)[1], 3.0);
  EXPECT_EQ(m.var(1, 0), 3.0);
  EXPECT_EQ(files, (std::vector<std::string>{json, dir + "/mu.npy", dir + "/var.npy"}));
}

// Issue 15: values that are legal one by one but whose squares a double cannot hold are refused
// when the model is validated (sd = 1e200 used to be accepted, and every formula then held inf).
TEST(Model, ValuesWhoseSquaresADoubleCannotHoldAreRefused) {
  struct Case {
    const char* json;
    const char* needle;
  };
  const Case cases[] = {
      {R"({"weights": [1], "means": [[0, 1]], "sd": 1e200})", "sd[0] = 1e+200: its square (the variance) overflows"},
      {R"({"weights": [1], "means": [[0, 1]], "sd": 1e-160})", "sd[0] = 1e-160: its square (the variance) underflows"},
      {R"({"weights": [1], "means": [[0, 1]], "var_diag": [[1, 1e-310]]})", "below the smallest normal double"},
      {R"({"weights": [1], "means": [[1e160, 0]]})", "E|X|^2"},
      {R"({"weights": [1], "means": [[1e154, 1e154, 1e154]]})", "E|X|^2"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.json);
    EXPECT_NE(e.find(c.needle), std::string::npos) << "json: " << c.json << "\nerror: " << e;
  }
  // The largest that fit are accepted.
  EXPECT_EQ(error_of(R"({"weights": [1], "means": [[1e150, 0]], "sd": 1e150})"), "");
  PresetParams p;
  p.name = "two-point";
  p.radius = 1e200;
  EXPECT_THROW(make_preset(p), Error);
}
