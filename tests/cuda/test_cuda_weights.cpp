// gmmdiff: the products path's weights kernel (cuda/kernels/step_kernels.cu,
// posterior_weights_kernel) emulated on the host, lane by lane, with the kernel's own per-row code
// (cuda/kernels/weights_lane.hpp), so it is checked on a machine without a GPU:
//  - one row: the W lanes' scans, the butterfly merges (every lane must end with the same bits),
//    the writes and the group sum of s2, against detail::posterior_weights_row (the CPU's), for
//    K from 1 to 4096, every Q mode, both precisions, logits from small to 1e4 apart, and NaN;
//  - whole steps of the products path (host products in the run's precision around the emulated
//    weights and the update kernel's arithmetic) against the CPU backend's products path.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/kernels/weights_lane.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "util/backend_util.hpp"

namespace {

using namespace gmmdiff;
using detail::QMode;

// The emulated weights differ from posterior_weights_row's only in the order of the sum of the
// exponentials (a tree over the lanes, each lane's share in the online rescaling): each weight is
// exp(l - max) (the same bits) times the reciprocal of a sum that rounds differently. A sum of K
// terms in another order differs by about sqrt(K) ulp (a random walk of roundings; K ulp at
// worst), so the tolerance, relative to each weight and to s2, is kSumUlps x eps x sqrt(K).
// Measured: at most 0.72 eps sqrt(K) (float32, K = 4096).
constexpr double kSumUlps = 4.0;
template <typename Real>
double weight_tol(int K) {
  return kSumUlps * std::numeric_limits<Real>::epsilon() * std::sqrt(static_cast<double>(K));
}
// Whole steps against the CPU backend's products path: as test_cuda_backend.cpp's tolerances,
// relative to the scale of the data (the products' sums run in another order too).
constexpr double kStepTolF32 = 1e-4;
constexpr double kStepTolF64 = 1e-10;

const char* mode_name(QMode m) {
  return m == QMode::Uniform ? "uniform" : m == QMode::Isotropic ? "isotropic" : "diagonal";
}

/// The sum over a group of W lanes as the kernel's butterfly forms it (each lane adds its
/// partner's value at each level); returns lane 0's, after checking that every lane has its bits.
template <typename Real>
Real butterfly_sum(std::vector<Real> v) {
  const int W = static_cast<int>(v.size());
  for (int o = W / 2; o > 0; o /= 2) {
    std::vector<Real> next(v.size());
    for (int l = 0; l < W; ++l) next[l] = v[l] + v[l ^ o];
    v.swap(next);
  }
  for (int l = 1; l < W; ++l) {
    const bool same = v[l] == v[0] || (std::isnan(v[l]) && std::isnan(v[0]));
    EXPECT_TRUE(same) << "lane " << l << " of " << W << " holds other bits: " << v[l] << " vs " << v[0];
  }
  return v[0];
}

/// One row through the kernel's lanes. row: G1 in, weights out; returns s2.
template <typename Real>
Real emulate_weights_row(Real* row, const Real* g2, const Real* y, int d, const Real* bias, const Real* Q, int K,
                         QMode mode) {
  const int W = gpu::weights_lanes(K);
  Real rsq = 0;
  if (mode == QMode::Isotropic) {
    std::vector<Real> part(W);
    for (int l = 0; l < W; ++l) part[l] = gpu::weights_lane_rsq(y, d, l, W);
    rsq = butterfly_sum(part);
  }
  std::vector<detail::OnlineLse<Real>> st(W);
  for (int l = 0; l < W; ++l) st[l] = gpu::weights_lane_scan<Real>(row, g2, rsq, bias, Q, K, mode, l, W);
  for (int o = W / 2; o > 0; o /= 2) {
    std::vector<detail::OnlineLse<Real>> next(st.size());
    for (int l = 0; l < W; ++l) next[l] = gpu::lse_merge(st[l], st[l ^ o]);
    st.swap(next);
  }
  // Every lane ends with the same state (so the same weights). With a NaN logit the states may
  // differ in their max, but every sum is then NaN, and so is every weight, as on the CPU.
  for (int l = 1; l < W; ++l) {
    const bool nan_sums = std::isnan(st[l].sum) && std::isnan(st[0].sum);
    const bool same = nan_sums || (st[l].mx == st[0].mx && st[l].sum == st[0].sum);
    EXPECT_TRUE(same) << "lane " << l << " of " << W << " ends the merge with another state";
  }
  std::vector<Real> wq(W);
  for (int l = 0; l < W; ++l) wq[l] = gpu::weights_lane_write<Real>(row, g2, rsq, bias, Q, K, mode, l, W, st[l]);
  const Real wq_sum = mode == QMode::Isotropic ? butterfly_sum(wq) : Real(0);
  return gpu::weights_row_s2<Real>(wq_sum, Q, mode);
}

TEST(CudaWeightsEmulation, LanesPerRow) {
  EXPECT_EQ(gpu::weights_lanes(1), 1);
  EXPECT_EQ(gpu::weights_lanes(2), 2);
  EXPECT_EQ(gpu::weights_lanes(5), 8);
  EXPECT_EQ(gpu::weights_lanes(32), 32);
  EXPECT_EQ(gpu::weights_lanes(33), 32);
  EXPECT_EQ(gpu::weights_lanes(4096), 32);
}

TEST(CudaWeightsEmulation, MergeIsSymmetricAndEmptyIsItsIdentity) {
  using S = detail::OnlineLse<float>;
  const S a{3.0f, 1.7f}, b{-2.0f, 5.3f}, c{3.0f, 0.4f}, e = gpu::lse_empty<float>();
  for (const auto& [x, y] : {std::pair<S, S>{a, b}, {a, c}, {b, c}}) {
    const S xy = gpu::lse_merge(x, y), yx = gpu::lse_merge(y, x);
    EXPECT_EQ(xy.mx, yx.mx);
    EXPECT_EQ(xy.sum, yx.sum);
    const double want = std::log(x.sum) + x.mx, other = std::log(y.sum) + y.mx;
    const double lse = std::max(want, other) + std::log1p(std::exp(-std::abs(want - other)));
    EXPECT_NEAR(std::log(static_cast<double>(xy.sum)) + xy.mx, lse, 1e-6);
  }
  EXPECT_EQ(gpu::lse_merge(a, e).sum, a.sum);
  EXPECT_EQ(gpu::lse_merge(e, a).mx, a.mx);
  EXPECT_EQ(gpu::lse_merge(e, e).sum, 0.0f);
}

struct RowCase {
  int K;
  QMode mode;
  double spread;  // logits' scale
};

template <typename Real>
void check_rows(const RowCase& c) {
  const double tol = weight_tol<Real>(c.K);
  const int K = c.K, d = 13, rows = 6;
  std::ostringstream tr;
  tr << "K " << K << " mode " << mode_name(c.mode) << " spread " << c.spread << " precision "
     << (sizeof(Real) == 4 ? "fp32" : "fp64");
  SCOPED_TRACE(tr.str());
  std::vector<Real> bias(K), Q(c.mode == QMode::Diagonal ? static_cast<std::size_t>(K) * d : K);
  for (int k = 0; k < K; ++k) bias[k] = static_cast<Real>(c.spread * std::sin(0.7 * k + 0.3));
  for (std::size_t i = 0; i < Q.size(); ++i) Q[i] = static_cast<Real>(0.5 + 0.4 * std::cos(1.9 * static_cast<double>(i)));
  if (c.mode == QMode::Uniform) std::fill(Q.begin(), Q.end(), Q[0]);
  for (int i = 0; i < rows; ++i) {
    std::vector<Real> y(d), g1(K), g2(K);
    for (int j = 0; j < d; ++j) y[j] = static_cast<Real>(1.5 * std::sin(2.1 * (i + 1) * (j + 1)));
    for (int k = 0; k < K; ++k) {
      g1[k] = static_cast<Real>(c.spread * std::cos(0.37 * (k + 1) * (i + 2)));
      g2[k] = static_cast<Real>(std::abs(c.spread) * (1.0 + std::sin(0.13 * k * (i + 1))));
    }
    // |y|^2 as the kernel forms it (a tree over the lanes): the CPU's sum (j ascending) rounds
    // differently, which moves a logit of size 1e4 by more than the weights' tolerance; that part is
    // covered by the step comparison below. Here the row's arithmetic is compared given the same |y|^2.
    const int W = gpu::weights_lanes(K);
    std::vector<Real> part(W);
    for (int l = 0; l < W; ++l) part[l] = gpu::weights_lane_rsq(y.data(), d, l, W);
    const Real rsq = butterfly_sum(part);
    std::vector<Real> want = g1, got = g1;
    const Real want_s2_iso = detail::posterior_weights_row<Real>(want.data(), g2.data(), rsq, bias.data(), Q.data(),
                                                                 K, c.mode);
    const Real want_s2 = gpu::weights_row_s2<Real>(want_s2_iso, Q.data(), c.mode);
    const Real got_s2 = emulate_weights_row<Real>(got.data(), g2.data(), y.data(), d, bias.data(), Q.data(), K, c.mode);
    double sum = 0;
    for (int k = 0; k < K; ++k) {
      ASSERT_TRUE(std::isfinite(static_cast<double>(got[k]))) << "row " << i << " k " << k;
      sum += static_cast<double>(got[k]);
      const double w = static_cast<double>(want[k]), g = static_cast<double>(got[k]);
      EXPECT_LE(std::abs(g - w), tol * w + std::numeric_limits<Real>::denorm_min())
          << "row " << i << " k " << k << " cpu " << w << " emulated " << g;
    }
    EXPECT_NEAR(sum, 1.0, 1e3 * tol) << "row " << i;
    EXPECT_LE(std::abs(static_cast<double>(got_s2) - static_cast<double>(want_s2)),
              tol * std::abs(static_cast<double>(want_s2)) + 1e-300)
        << "row " << i << " s2 cpu " << want_s2 << " emulated " << got_s2;
  }
}

TEST(CudaWeightsEmulation, RowsMatchPosteriorWeightsRow) {
  // K: one lane (1), a part of a warp with idle lanes (3, 5), exactly a warp (32), one component
  // past it (33), several a lane (70, 1000, 4096). Spreads: near-equal weights (0.01), moderate
  // (5), and logits 1e4 apart (exp of the logits themselves overflows; THEORY.md's |mu| = 1e4).
  for (int K : {1, 3, 5, 32, 33, 70, 1000, 4096})
    for (QMode mode : {QMode::Uniform, QMode::Isotropic, QMode::Diagonal})
      for (double spread : {0.01, 5.0, 1e4}) {
        check_rows<float>({K, mode, spread});
        check_rows<double>({K, mode, spread});
      }
}

TEST(CudaWeightsEmulation, NaNLogitMakesTheRowNaNAsOnTheCpu) {
  for (int K : {1, 5, 70}) {
    for (int bad : {0, K / 2, K - 1}) {
      std::vector<double> bias(K, 0.0), Q(K, 1.0), g1(K), y = {1.0, 2.0};
      for (int k = 0; k < K; ++k) g1[k] = 0.1 * k;
      g1[bad] = std::numeric_limits<double>::quiet_NaN();
      std::vector<double> want = g1, got = g1;
      detail::posterior_weights_row<double>(want.data(), nullptr, 5.0, bias.data(), Q.data(), K, QMode::Isotropic);
      emulate_weights_row<double>(got.data(), nullptr, y.data(), 2, bias.data(), Q.data(), K, QMode::Isotropic);
      for (int k = 0; k < K; ++k) {
        EXPECT_EQ(std::isnan(want[k]), std::isnan(got[k])) << "K " << K << " NaN at " << bad << ", k " << k;
        EXPECT_TRUE(std::isnan(got[k])) << "K " << K << " NaN at " << bad << ", k " << k;
      }
    }
  }
}

// ---- whole steps of the products path ----

Mixture model_for(const std::string& family, int d, int K) {
  PresetParams p;
  p.name = "random-sphere";
  p.d = d;
  p.K = K;
  p.radius = 3.0;
  p.seed = 17;
  double sum = 0;
  for (int k = 0; k < K; ++k) sum += 1.0 + k % 3;
  for (int k = 0; k < K; ++k) p.weights.push_back((1.0 + k % 3) / sum);
  if (family == "iso-varying") {
    p.sd.clear();
    for (int k = 0; k < K; ++k) p.sd.push_back(0.4 + 0.35 * (k % 4));
    return make_preset(p);
  }
  p.sd = {1.0};
  Mixture m = make_preset(p);
  if (family == "diagonal") {
    m.cov = Covariance::Diagonal;
    m.var_diag.resize(static_cast<std::size_t>(K) * d);
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) m.var_diag[static_cast<std::size_t>(k) * d + j] = 0.3 + 0.2 * ((k + 3 * j) % 5);
    validate(m);
  }
  return m;
}

template <typename Real>
std::vector<Real> to_real(const std::vector<double>& v) {
  return std::vector<Real>(v.begin(), v.end());
}

/// One products-path step on the host as the CUDA backend runs it: the products in Real (any
/// order: cuBLAS's is not the CPU's either), the emulated weights kernel, the update kernel's
/// arithmetic with its Philox counters.
template <typename Real>
void emulate_products_step(std::vector<Real>& Y, std::size_t rows, int d, int K, uint64_t first,
                           const StepCoeffs& c, uint64_t seed) {
  const QMode mode = c.diagonal ? QMode::Diagonal : c.uniform_q ? QMode::Uniform : QMode::Isotropic;
  const std::vector<Real> P = to_real<Real>(c.P), Q = to_real<Real>(c.Q), bias = to_real<Real>(c.bias);
  const std::vector<Real> bdir = c.bias_dir.empty() ? std::vector<Real>(d, Real(0)) : to_real<Real>(c.bias_dir);
  const detail::StepScalars<Real> sc{static_cast<Real>(c.kappa), static_cast<Real>(c.inv_sqrt_alpha),
                                     static_cast<Real>(c.sigma), static_cast<Real>(c.score_scale),
                                     static_cast<Real>(c.noise_sd), static_cast<uint32_t>(c.t), seed};
  std::vector<Real> G(K), G2(K), S1(d), S2(d);
  for (std::size_t i = 0; i < rows; ++i) {
    Real* y = Y.data() + i * d;
    for (int k = 0; k < K; ++k) {
      Real g1 = 0, g2 = 0;
      for (int j = 0; j < d; ++j) {
        g1 += y[j] * P[static_cast<std::size_t>(k) * d + j];
        if (mode == QMode::Diagonal) g2 += (y[j] * y[j]) * Q[static_cast<std::size_t>(k) * d + j];
      }
      G[k] = g1;
      G2[k] = g2;
    }
    const Real s2 = emulate_weights_row<Real>(G.data(), G2.data(), y, d, bias.data(), Q.data(), K, mode);
    for (int j = 0; j < d; ++j) {
      Real a = 0, b = 0;
      for (int k = 0; k < K; ++k) {
        a += G[k] * P[static_cast<std::size_t>(k) * d + j];
        if (mode == QMode::Diagonal) b += G[k] * Q[static_cast<std::size_t>(k) * d + j];
      }
      S1[j] = a;
      S2[j] = b;
    }
    for (int blk = 0; blk < (d + 3) / 4; ++blk) {
      Real z[4] = {0, 0, 0, 0}, xi[4] = {0, 0, 0, 0};
      if (c.sigma != 0.0) detail::philox_normal4<Real>(seed, kStreamStep, first + i, sc.t, static_cast<uint32_t>(blk), z);
      if (c.noise_sd != 0.0)
        detail::philox_normal4<Real>(seed, kStreamScoreNoise, first + i, sc.t, static_cast<uint32_t>(blk), xi);
      for (int q = 0; q < 4 && 4 * blk + q < d; ++q) {
        const int j = 4 * blk + q;
        const Real s = detail::score_coord<Real>(y[j], S1[j], mode == QMode::Diagonal ? S2[j] : s2);
        y[j] = detail::update_coord<Real>(y[j], s, bdir[j], xi[q], z[q], sc);
      }
    }
  }
}

template <typename Real>
void check_products_run(const std::string& family, int d, int K, Precision p, ScoreErrorKind err) {
  std::ostringstream tr;
  tr << "model " << family << " d " << d << " K " << K << " precision " << to_string(p) << " score_error "
     << to_string(err);
  SCOPED_TRACE(tr.str());
  const Mixture m = model_for(family, d, K);
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = 12;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.seed = 99;
  o.precision = p;
  o.score_error.kind = err;
  o.score_error.eps = err == ScoreErrorKind::None ? 0.0 : 0.2;
  const Mixture sm = score_model(m, o.score_error, o.seed);
  const std::vector<double> bias_unit = err == ScoreErrorKind::Bias ? bias_direction(d, o.seed) : std::vector<double>();
  const std::size_t rows = 20;
  const uint64_t first = 321;
  auto cpu = make_backend("cpu", 2);
  cpu->set_step_path("products");
  cpu->begin(run_shape(m, p, o.seed, 256), m);
  cpu->init_chunk(first, rows);
  std::vector<Real> y(rows * static_cast<std::size_t>(d));
  cpu->download(y.data());
  for (int t = s.T; t > o.stop; --t) {
    const StepCoeffs c = step_coeffs(sm, s, t, o, bias_unit);
    cpu->step(c);
    emulate_products_step<Real>(y, rows, d, K, first, c, o.seed);
  }
  const std::vector<double> emu(y.begin(), y.end());
  test::expect_rows_close(test::download_double(*cpu, d, p), emu, d, p == Precision::FP32 ? kStepTolF32 : kStepTolF64,
                          "emulated");
}

TEST(CudaWeightsEmulation, ProductsStepsMatchCpuBackend) {
  for (const std::string family : {"iso-uniform", "iso-varying", "diagonal"})
    for (int K : {5, 70}) {  // idle lanes in the group; several components a lane (K = 1: the row tests)
      check_products_run<float>(family, 7, K, Precision::FP32, ScoreErrorKind::None);
      check_products_run<double>(family, 7, K, Precision::FP64, ScoreErrorKind::None);
    }
  for (ScoreErrorKind e : {ScoreErrorKind::Bias, ScoreErrorKind::Gaussian, ScoreErrorKind::Weights}) {
    check_products_run<float>("iso-varying", 21, 40, Precision::FP32, e);
    check_products_run<double>("iso-varying", 21, 40, Precision::FP64, e);
  }
}

}  // namespace
