// gmmdiff: the fused CUDA step (cuda/kernels/fused_step.hpp) against its oracle, the CPU backend.
// Two halves:
//  - CudaFusedHelpers, CudaFusedSampler: run everywhere, no device needed. The online
//    log-sum-exp against posterior_weights_row; a host emulation of the kernel's per-particle code
//    (cuda/kernels/fused_lane.hpp, all G lanes of a particle in one thread, the same packing and lane
//    ownership as the kernel) against the CPU backend; and the host driver's use of
//    Backend::step_many through a backend that implements it by stepping a CPU backend.
//  - CudaFused, CudaFusedRun: the CUDA backend's fused path on a device (skip cleanly without
//    one): against the CPU backend, multi-step against single-step, chunk sizes, step paths and
//    the measurements.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/kernels/fused_lane.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/types.hpp"
#include "util/backend_util.hpp"

namespace {

using namespace gmmdiff;
using namespace gmmdiff::test;
using gpu::FusedLayout;
using gpu::FusedStepInfo;

// Tolerances, relative to the scale of the compared data (max(1, max |cpu value|)): the same as
// test_cuda_backend.cpp's. The fused step differs from the CPU's products only in the order of
// its sums (a tree over the lanes, the online log-sum-exp's rescaling) and FMA contraction.
constexpr double kFp32Tol = 1e-4;
constexpr double kFp64Tol = 1e-10;
// The online log-sum-exp's weights against posterior_weights_row's, relative to the largest.
constexpr double kLseFp32Tol = 1e-5;
constexpr double kLseFp64Tol = 1e-13;

double tol_for(Precision p) { return p == Precision::FP32 ? kFp32Tol : kFp64Tol; }

// ---- models and schedules ----

/// "iso-uniform", "iso-varying" or "diagonal" random-sphere mixtures of any d and K.
Mixture model_for(const std::string& family, int d, int K) {
  PresetParams p;
  p.name = "random-sphere";
  p.d = d;
  p.K = K;
  p.radius = 2.0;
  p.seed = 7;
  double sum = 0;
  for (int k = 0; k < K; ++k) sum += 1.0 + k % 4;
  for (int k = 0; k < K; ++k) p.weights.push_back((1.0 + k % 4) / sum);
  if (family == "iso-varying") {
    p.sd.clear();
    for (int k = 0; k < K; ++k) p.sd.push_back(0.5 + 0.3 * (k % 5));
    return make_preset(p);
  }
  p.sd = {1.0};
  Mixture m = make_preset(p);
  if (family == "diagonal") {
    m.cov = Covariance::Diagonal;
    m.var_diag.resize(static_cast<std::size_t>(K) * d);
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j)
        m.var_diag[static_cast<std::size_t>(k) * d + j] = 0.3 + 0.25 * ((k + 2 * j) % 6);
    validate(m);
  }
  return m;
}

const std::vector<std::string>& families() {
  static const std::vector<std::string> f = {"iso-uniform", "iso-varying", "diagonal"};
  return f;
}

Schedule schedule_T(int T) {
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = T;
  return make_schedule(sp);
}

SampleOptions options(Precision p, SamplerKind s, ScoreErrorKind e, uint64_t n) {
  SampleOptions o;
  o.n = n;
  o.sampler = s;
  o.seed = 2024;
  o.precision = p;
  o.score_error.kind = e;
  o.score_error.eps = e == ScoreErrorKind::None ? 0.0 : 0.2;
  o.eps_samples = 16;
  return o;
}

/// The coefficients of steps T..stop+1, as the host driver computes them.
std::vector<StepCoeffs> all_steps(const Mixture& m, const Schedule& s, const SampleOptions& o) {
  const Mixture sm = score_model(m, o.score_error, o.seed);
  const std::vector<double> bias_unit =
      o.score_error.kind == ScoreErrorKind::Bias ? bias_direction(m.d, o.seed) : std::vector<double>();
  std::vector<StepCoeffs> out;
  for (int t = s.T; t > o.stop; --t) out.push_back(step_coeffs(sm, s, t, o, bias_unit));
  return out;
}

/// Bitwise equality (NaN equal to NaN), naming the first difference.
void expect_bitwise_equal(const std::vector<double>& a, const std::vector<double>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    ASSERT_EQ(a[i], b[i]) << what << ": first difference at value " << i;
  }
}

// =====================================================================================
// Host-side checks (no device needed)
// =====================================================================================

template <typename Real>
void check_online_lse(const std::vector<double>& logits_d, double tol) {
  const int K = static_cast<int>(logits_d.size());
  std::vector<Real> row(logits_d.begin(), logits_d.end()), bias(K, Real(0)), Q(K, Real(1));
  const std::vector<Real> logits = row;
  detail::posterior_weights_row<Real>(row.data(), nullptr, Real(0), bias.data(), Q.data(), K, detail::QMode::Uniform);
  // Online: every component's weight as an accumulator, rescaled as the fused step rescales its sums.
  detail::OnlineLse<Real> s{Real(0), Real(0)};
  std::vector<Real> acc(K, Real(0));
  for (int k = 0; k < K; ++k) {
    Real scale, e;
    detail::online_lse_push<Real>(s, logits[k], k, scale, e);
    ASSERT_GE(scale, Real(0));
    ASSERT_LE(scale, Real(1));
    ASSERT_GE(e, Real(0));
    ASSERT_LE(e, Real(1));
    if (scale != Real(1))
      for (int i = 0; i < k; ++i) acc[i] *= scale;
    acc[k] = e;
  }
  for (int k = 0; k < K; ++k) {
    const double w = static_cast<double>(acc[k] / s.sum);
    ASSERT_TRUE(std::isfinite(w)) << "k " << k;
    EXPECT_NEAR(w, static_cast<double>(row[k]), tol) << "K " << K << " k " << k << " logit " << logits_d[k];
  }
}

std::vector<std::vector<double>> lse_cases() {
  std::vector<std::vector<double>> out;
  out.push_back({0.0});
  out.push_back({1.0, 2.0, 3.0});  // ascending: rescales at every step
  out.push_back({3.0, 2.0, 1.0});  // descending: never rescales
  std::vector<double> big;
  for (int k = 0; k < 40; ++k) big.push_back(250.0 * k);  // exp of the logits themselves overflows
  out.push_back(big);
  std::vector<double> mixed;
  for (int k = 0; k < 4096; ++k) mixed.push_back(1e4 * std::sin(0.37 * k) - 3e3 * std::cos(1.3 * k));
  out.push_back(mixed);
  std::vector<double> close;
  for (int k = 0; k < 300; ++k) close.push_back(0.01 * std::sin(1.7 * k));
  out.push_back(close);
  return out;
}

TEST(CudaFusedHelpers, OnlineLseMatchesPosteriorWeights) {
  for (const auto& logits : lse_cases()) {
    SCOPED_TRACE("K = " + std::to_string(logits.size()));
    check_online_lse<float>(logits, kLseFp32Tol);
    check_online_lse<double>(logits, kLseFp64Tol);
  }
}

TEST(CudaFusedHelpers, OnlineLsePropagatesNaNAsPosteriorWeights) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  detail::OnlineLse<double> s{0, 0};
  double scale, e;
  detail::online_lse_push(s, 1.0, 0, scale, e);
  detail::online_lse_push(s, nan, 1, scale, e);
  EXPECT_TRUE(std::isnan(e));
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(CudaFusedHelpers, FusedLogitMatchesPosteriorWeightsRow) {
  // One component at a time (K = 1 rows would normalise to 1, so compare the logits the two forms
  // build: fused_logit against the first loop of posterior_weights_row, via K = 2 ratios).
  const double bias[2] = {-0.3, 0.7}, g1[2] = {1.25, -0.5}, g2[2] = {2.0, 0.25}, Q[2] = {0.8, 1.6};
  const double rsq = 3.5;
  for (detail::QMode mode : {detail::QMode::Uniform, detail::QMode::Isotropic, detail::QMode::Diagonal}) {
    double row[2] = {g1[0], g1[1]};
    detail::posterior_weights_row<double>(row, g2, rsq, bias, Q, 2, mode);
    const double l0 = detail::fused_logit(bias[0], g1[0], g2[0], rsq, Q[0], mode);
    const double l1 = detail::fused_logit(bias[1], g1[1], g2[1], rsq, Q[1], mode);
    EXPECT_NEAR(row[0] / row[1], std::exp(l0 - l1), 1e-13) << "mode " << static_cast<int>(mode);
  }
}

TEST(CudaFusedHelpers, PlanCoversEveryCoordinateOnce) {
  for (int d = 1; d <= gpu::kFusedMaxD; ++d) {
    const gpu::FusedPlan p = gpu::fused_plan(d);
    ASSERT_GE(p.G, 1) << "d " << d;
    ASSERT_LE(p.G, gpu::kFusedMaxLanes) << "d " << d;
    ASSERT_EQ(p.G & (p.G - 1), 0) << "G must be a power of two, d " << d;
    ASSERT_TRUE(p.NB == 1 || p.NB == 2 || p.NB == 4) << "d " << d;
    std::vector<int> owners(static_cast<std::size_t>(4 * p.G * p.NB), 0);
    for (int lane = 0; lane < p.G; ++lane)
      for (int c = 0; c < p.NB; ++c)
        for (int q = 0; q < 4; ++q) ++owners[static_cast<std::size_t>(gpu::fused_block_coord(lane, p.G, c) + q)];
    for (int j = 0; j < d; ++j) ASSERT_EQ(owners[static_cast<std::size_t>(j)], 1) << "d " << d << " j " << j;
  }
  EXPECT_EQ(gpu::fused_plan(0).G, 0);
  EXPECT_EQ(gpu::fused_plan(gpu::kFusedMaxD + 1).G, 0);
  EXPECT_EQ(gpu::fused_plan(4).G, 1);
  EXPECT_EQ(gpu::fused_plan(7).G, 2);
  EXPECT_EQ(gpu::fused_plan(128).G, 32);
  EXPECT_EQ(gpu::fused_plan(129).NB, 2);
  EXPECT_EQ(gpu::fused_plan(300).NB, 4);
}

TEST(CudaFusedHelpers, PackedLayoutIsAlignedAndPadded) {
  for (bool diag : {false, true}) {
    const int K = 5, d = 7;
    const Mixture m = model_for(diag ? "diagonal" : "iso-varying", d, K);
    const Schedule s = schedule_T(10);
    const SampleOptions o = options(Precision::FP32, SamplerKind::DDPM, ScoreErrorKind::Bias, 1);
    const StepCoeffs c = all_steps(m, s, o).front();
    const FusedLayout L = gpu::make_fused_layout(K, d, diag);
    for (std::size_t off : {L.P, L.Q, L.bias, L.bias_dir, L.stride}) EXPECT_EQ(off % 4, 0u);
    std::vector<double> packed(L.stride, -1.0);
    gpu::pack_fused_step(c, L, packed.data());
    for (int k = 0; k < K; ++k) {
      for (int j = 0; j < L.dp; ++j) {
        const double want_p = j < d ? c.P[static_cast<std::size_t>(k) * d + j] : 0.0;
        EXPECT_EQ(packed[L.P + static_cast<std::size_t>(k) * L.dp + j], want_p) << "P " << k << "," << j;
        if (diag) {
          const double want_q = j < d ? c.Q[static_cast<std::size_t>(k) * d + j] : 0.0;
          EXPECT_EQ(packed[L.Q + static_cast<std::size_t>(k) * L.dp + j], want_q) << "Q " << k << "," << j;
        }
      }
      if (!diag) {
        EXPECT_EQ(packed[L.Q + k], c.Q[k]);
      }
      EXPECT_EQ(packed[L.bias + k], c.bias[k]);
    }
    for (int k = K; k < L.Kp; ++k) EXPECT_EQ(packed[L.bias + k], 0.0);
    for (int j = 0; j < L.dp; ++j) EXPECT_EQ(packed[L.bias_dir + j], j < d ? c.bias_dir[j] : 0.0);
  }
}

// ---- the kernel's per-particle code, emulated on the host ----

/// Steps rows particles (Y row-major [rows, d], in Real) through `steps` with the kernel's
/// per-particle code: G lanes of NB blocks, all held by this thread (LPT = G).
template <typename Real, int G, int NB>
void emulate_fused(std::vector<Real>& Y, std::size_t rows, int d, uint64_t first, const std::vector<StepCoeffs>& steps,
                   const FusedLayout& L, uint64_t seed) {
  constexpr int V = 4 * NB;
  std::vector<Real> packed(L.stride);
  int lanes[G];
  for (int h = 0; h < G; ++h) lanes[h] = h;
  for (const StepCoeffs& c : steps) {
    gpu::pack_fused_step(c, L, packed.data());
    const FusedStepInfo<Real> inf = gpu::make_fused_info<Real>(c, seed);
    for (std::size_t i = 0; i < rows; ++i) {
      Real y[G][V];
      for (int h = 0; h < G; ++h)
        for (int cc = 0; cc < NB; ++cc)
          for (int q = 0; q < 4; ++q) {
            const int j = gpu::fused_block_coord(h, G, cc) + q;
            y[h][4 * cc + q] = j < d ? Y[i * d + j] : Real(0);
          }
      if (L.diag)
        gpu::fused_particle_step<Real, NB, G, true>(y, packed.data(), L, inf, lanes, G, first + i, gpu::IdentitySum{},
                                                    gpu::ScalarLoad4{});
      else
        gpu::fused_particle_step<Real, NB, G, false>(y, packed.data(), L, inf, lanes, G, first + i,
                                                     gpu::IdentitySum{}, gpu::ScalarLoad4{});
      for (int h = 0; h < G; ++h)
        for (int cc = 0; cc < NB; ++cc)
          for (int q = 0; q < 4; ++q) {
            const int j = gpu::fused_block_coord(h, G, cc) + q;
            if (j < d) {
              Y[i * d + j] = y[h][4 * cc + q];
            } else {
              ASSERT_EQ(y[h][4 * cc + q], Real(0)) << "padding coordinate " << j << " was written";
            }
          }
    }
  }
}

template <typename Real>
void emulate_fused_any(std::vector<Real>& Y, std::size_t rows, int d, uint64_t first,
                       const std::vector<StepCoeffs>& steps, const FusedLayout& L, uint64_t seed) {
  const gpu::FusedPlan p = gpu::fused_plan(d);
  if (p.NB == 1) {
    switch (p.G) {
      case 1: return emulate_fused<Real, 1, 1>(Y, rows, d, first, steps, L, seed);
      case 2: return emulate_fused<Real, 2, 1>(Y, rows, d, first, steps, L, seed);
      case 4: return emulate_fused<Real, 4, 1>(Y, rows, d, first, steps, L, seed);
      case 8: return emulate_fused<Real, 8, 1>(Y, rows, d, first, steps, L, seed);
      case 16: return emulate_fused<Real, 16, 1>(Y, rows, d, first, steps, L, seed);
      case 32: return emulate_fused<Real, 32, 1>(Y, rows, d, first, steps, L, seed);
      default: break;
    }
  } else if (p.NB == 2) {
    return emulate_fused<Real, 32, 2>(Y, rows, d, first, steps, L, seed);
  } else if (p.NB == 4) {
    return emulate_fused<Real, 32, 4>(Y, rows, d, first, steps, L, seed);
  }
  FAIL() << "no plan for d = " << d;
}

struct EmuCase {
  std::string family;
  int d, K;
  Precision precision;
  SamplerKind sampler;
  ScoreErrorKind error;
};

std::string describe(const EmuCase& c) {
  std::ostringstream os;
  os << "model " << c.family << " d " << c.d << " K " << c.K << " precision " << to_string(c.precision)
     << " sampler " << to_string(c.sampler) << " score_error " << to_string(c.error);
  return os.str();
}

template <typename Real>
void check_emulation(const EmuCase& c) {
  SCOPED_TRACE(describe(c));
  const Mixture m = model_for(c.family, c.d, c.K);
  const Schedule s = schedule_T(12);
  const std::size_t rows = 24;
  const uint64_t first = 123;
  const SampleOptions o = options(c.precision, c.sampler, c.error, rows);
  const std::vector<StepCoeffs> steps = all_steps(m, s, o);
  auto cpu = make_backend("cpu", 2);
  cpu->begin(run_shape(m, c.precision, o.seed, 256), m);
  cpu->init_chunk(first, rows);
  std::vector<Real> y(rows * static_cast<std::size_t>(c.d));
  cpu->download(y.data());
  for (const StepCoeffs& sc : steps) cpu->step(sc);
  const FusedLayout L = gpu::make_fused_layout(c.K, c.d, m.cov == Covariance::Diagonal);
  emulate_fused_any<Real>(y, rows, c.d, first, steps, L, o.seed);
  const std::vector<double> emu(y.begin(), y.end());
  expect_rows_close(download_double(*cpu, c.d, c.precision), emu, c.d, tol_for(c.precision), "emulated");
}

TEST(CudaFusedHelpers, EmulatedKernelMatchesCpuBackend) {
  // d: one thread (1, 3), 2 lanes (7), idle lanes in a group (21: 6 blocks on 8 lanes; 40: 10 on
  // 16), a full warp (128), 2 and 4 blocks a lane (130, 300), the widest (512). K = 70 makes the
  // online log-sum-exp rescale often.
  std::vector<EmuCase> cases;
  for (const std::string& f : families())
    for (int d : {1, 3, 7, 21, 40, 128, 130, 300, 512})
      for (int K : {5, 70})
        for (Precision p : {Precision::FP32, Precision::FP64})
          cases.push_back({f, d, K, p, SamplerKind::DDPM, ScoreErrorKind::None});
  for (ScoreErrorKind e : {ScoreErrorKind::Bias, ScoreErrorKind::Scale, ScoreErrorKind::Weights,
                           ScoreErrorKind::Means, ScoreErrorKind::Gaussian})
    for (SamplerKind sk : {SamplerKind::DDPM, SamplerKind::DDIM})
      for (Precision p : {Precision::FP32, Precision::FP64}) cases.push_back({"iso-varying", 21, 5, p, sk, e});
  for (const EmuCase& c : cases) {
    if (c.precision == Precision::FP32) check_emulation<float>(c);
    else check_emulation<double>(c);
  }
}

// ---- the host driver's multi-step calls ----

/// A CPU backend that also takes several steps per call (by stepping one at a time), counting
/// the calls: the host driver's use of step_many is then checked without a device.
class ManyStepCpu final : public Backend {
 public:
  ManyStepCpu() : inner_(make_backend("cpu", 2)) {}
  std::string name() const override { return "cpu-many"; }
  std::string device_name() const override { return inner_->device_name(); }
  std::size_t max_chunk_rows(const RunShape& shape) const override { return inner_->max_chunk_rows(shape); }
  void begin(const RunShape& shape, const Mixture& target) override { inner_->begin(shape, target); }
  void init_chunk(uint64_t first, std::size_t rows) override {
    inner_->init_chunk(first, rows);
    sync();
  }
  void fill_target(uint64_t first, std::size_t rows) override {
    inner_->fill_target(first, rows);
    sync();
  }
  void upload_chunk(const double* host, uint64_t first, std::size_t rows) override {
    inner_->upload_chunk(host, first, rows);
    sync();
  }
  void step(const StepCoeffs& c) override {
    ++single_calls;
    inner_->step(c);
  }
  bool step_many(const StepCoeffs* steps, std::size_t count) override {
    ++many_calls;
    many_steps += count;
    for (std::size_t i = 0; i < count; ++i) inner_->step(steps[i]);
    return true;
  }
  void download(void* host) const override { inner_->download(host); }
  uint64_t count_nonfinite_rows() const override { return inner_->count_nonfinite_rows(); }
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override {
    inner_->accumulate_histograms(spec, counts);
  }
  std::size_t single_calls = 0, many_calls = 0, many_steps = 0;

 private:
  void sync() {
    rows_ = inner_->rows();
    first_ = inner_->first();
  }
  std::unique_ptr<Backend> inner_;
};

TEST(CudaFusedSampler, StepManyGivesTheSameParticlesAndSnapshots) {
  const Mixture m = model_for("iso-varying", 7, 5);
  const Schedule s = schedule_T(40);
  SampleOptions o = options(Precision::FP32, SamplerKind::DDPM, ScoreErrorKind::Gaussian, 600);
  o.chunk = 256;
  o.snapshot_steps = {40, 1};  // before the first step and after the last: step_many allowed
  auto cpu = make_backend("cpu", 2);
  ManyStepCpu many;
  PlacedSink a(o.n, m.d, o.precision), b(o.n, m.d, o.precision);
  run_sampler(m, s, o, *cpu, a);
  const RunSummary sum = run_sampler(m, s, o, many, b);
  expect_bitwise_equal(a.y, b.y, "step_many against step");
  EXPECT_EQ(a.snapshots, b.snapshots);
  ASSERT_EQ(a.snapshot_values.size(), b.snapshot_values.size());
  for (std::size_t i = 0; i < a.snapshot_values.size(); ++i)
    expect_bitwise_equal(a.snapshot_values[i], b.snapshot_values[i], "snapshot " + std::to_string(i));
  EXPECT_EQ(many.single_calls, 0u);
  EXPECT_EQ(many.many_steps, sum.chunks * static_cast<std::size_t>(s.T - o.stop));
  EXPECT_GE(many.many_calls, sum.chunks);  // slices: at least one call a chunk

  // A snapshot inside the schedule: one step at a time, same particles.
  o.snapshot_steps = {40, 17, 1};
  ManyStepCpu many2;
  PlacedSink c(o.n, m.d, o.precision), e(o.n, m.d, o.precision);
  run_sampler(m, s, o, *cpu, c);
  run_sampler(m, s, o, many2, e);
  expect_bitwise_equal(c.y, e.y, "interior snapshot");
  EXPECT_EQ(c.snapshots, e.snapshots);
  EXPECT_EQ(many2.many_calls, 0u);
  EXPECT_GT(many2.single_calls, 0u);
}

// =====================================================================================
// Device checks (skip without a device)
// =====================================================================================

TEST(CudaFused, SetStepPathRejectsUnknownNames) {
  GMMDIFF_REQUIRE_GPU();
  auto be = make_backend("cuda");
  for (const char* bad : {"", "Fused", "gemm", "products-fp16", "cuda-fused"}) {
    try {
      be->set_step_path(bad);
      ADD_FAILURE() << "set_step_path(\"" << bad << "\") was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("--path"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line expected: " << msg;
    }
  }
  for (const char* good : {"auto", "products", "fused", "products-tf32", "products-bf16"})
    EXPECT_NO_THROW(be->set_step_path(good)) << good;
  // BF16x9 emulation runs from compute capability 10.0 on; elsewhere it is refused, by name.
  const bool blackwell = cuda_devices()[0].cc_major >= 10;
  if (blackwell) EXPECT_NO_THROW(be->set_step_path("products-bf16x9"));
  else EXPECT_THROW(be->set_step_path("products-bf16x9"), Error);
}

TEST(CudaFused, FusedRejectsTooWideParticles) {
  GMMDIFF_REQUIRE_GPU();
  auto be = make_backend("cuda");
  const Mixture m = model_for("iso-uniform", gpu::kFusedMaxD + 1, 3);
  be->set_step_path("fused");
  EXPECT_THROW(be->begin(run_shape(m, Precision::FP32, 1, 256), m), Error);
  // auto falls back to the products path for it; asking for fused after begin() throws and
  // leaves the previous path.
  be->set_step_path("auto");
  be->begin(run_shape(m, Precision::FP32, 1, 256), m);
  EXPECT_EQ(be->step_path(), "cuda-gemm");
  EXPECT_THROW(be->set_step_path("fused"), Error);
  EXPECT_EQ(be->step_path(), "cuda-gemm");
}

struct PathCase {
  std::string request;
  std::string family;
  int d, K;
  Precision precision;
  std::string want;
};

TEST(CudaFused, StepPathReportsThePathTaken) {
  GMMDIFF_REQUIRE_GPU();
  const std::vector<PathCase> cases = {
      {"fused", "iso-varying", 7, 5, Precision::FP32, "cuda-fused"},
      {"products", "iso-varying", 7, 5, Precision::FP32, "cuda-gemm"},
      {"auto", "iso-varying", 7, 5, Precision::FP32, "cuda-fused"},
      {"auto", "diagonal", 7, 5, Precision::FP64, "cuda-fused"},
      {"auto", "iso-uniform", 40, 100, Precision::FP32, "cuda-gemm"},   // K > 64, d > 32
      {"auto", "iso-uniform", 8, 200, Precision::FP32, "cuda-fused"},   // K / d large
      {"auto", "iso-uniform", 200, 64, Precision::FP32, "cuda-gemm"},   // 51 KB: no shared-memory fit
      {"products-tf32", "iso-varying", 7, 5, Precision::FP32, "cuda-gemm-tf32"},
      {"products-tf32", "iso-varying", 7, 5, Precision::FP64, "cuda-gemm"},
      {"products-bf16", "iso-varying", 7, 5, Precision::FP32, "cuda-gemm-bf16"},
  };
  for (const PathCase& c : cases) {
    std::ostringstream tr;
    tr << "request " << c.request << " model " << c.family << " d " << c.d << " K " << c.K << " precision "
       << to_string(c.precision);
    SCOPED_TRACE(tr.str());
    const Mixture m = model_for(c.family, c.d, c.K);
    auto be = make_backend("cuda");
    be->set_step_path(c.request);
    SampleOptions o = options(c.precision, SamplerKind::DDPM, ScoreErrorKind::None, 300);
    PlacedSink sink(o.n, m.d, o.precision);
    const RunSummary sum = run_sampler(m, schedule_T(5), o, *be, sink);
    EXPECT_EQ(be->step_path(), c.want);
    EXPECT_EQ(sum.path, c.want);
  }
}

// ---- full runs against the CPU backend ----

struct RunCase {
  std::string model;
  Precision precision;
  SamplerKind sampler;
  ScoreErrorKind error;
  std::size_t cuda_chunk;  // 0: all particles in one chunk
};

void PrintTo(const RunCase& c, std::ostream* os) {
  *os << c.model << "/" << to_string(c.precision) << "/" << to_string(c.sampler) << "/" << to_string(c.error)
      << "/chunk" << c.cuda_chunk;
}

constexpr int kD = 7;  // not a multiple of 4: the last Philox block is partial
constexpr int kK = 5;

class CudaFusedRun : public ::testing::TestWithParam<RunCase> {};

TEST_P(CudaFusedRun, MatchesCpu) {
  GMMDIFF_REQUIRE_GPU();
  const RunCase& c = GetParam();
  const Mixture m = model_for(c.model, kD, kK);
  const Schedule sched = schedule_T(30);
  SampleOptions o = options(c.precision, c.sampler, c.error, 700);  // 700: the last chunk is partial
  std::ostringstream tr;
  tr << "model " << c.model << " d " << kD << " K " << kK << " precision " << to_string(c.precision) << " sampler "
     << to_string(c.sampler) << " score_error " << to_string(c.error) << " eps " << o.score_error.eps << " n "
     << o.n << " seed " << o.seed << " T " << sched.T << " cuda chunk " << c.cuda_chunk << " path fused";
  SCOPED_TRACE(tr.str());
  auto cpu = make_backend("cpu", 2);
  auto gpu = make_backend("cuda");
  gpu->set_step_path("fused");
  PlacedSink cpu_sink(o.n, m.d, c.precision), gpu_sink(o.n, m.d, c.precision);
  o.chunk = 0;
  run_sampler(m, sched, o, *cpu, cpu_sink);
  o.chunk = c.cuda_chunk;
  const RunSummary sum = run_sampler(m, sched, o, *gpu, gpu_sink);
  EXPECT_EQ(sum.path, "cuda-fused");
  EXPECT_EQ(sum.chunks, c.cuda_chunk == 0 ? 1u : (o.n + c.cuda_chunk - 1) / c.cuda_chunk);
  expect_rows_close(cpu_sink.y, gpu_sink.y, m.d, tol_for(c.precision));
}

std::vector<RunCase> all_run_cases() {
  std::vector<RunCase> out;
  for (const std::string& model : families())
    for (Precision p : {Precision::FP32, Precision::FP64})
      for (SamplerKind s : {SamplerKind::DDPM, SamplerKind::DDIM})
        for (ScoreErrorKind e : {ScoreErrorKind::None, ScoreErrorKind::Bias, ScoreErrorKind::Scale,
                                 ScoreErrorKind::Weights, ScoreErrorKind::Means, ScoreErrorKind::Gaussian})
          for (std::size_t chunk : {std::size_t{256}, std::size_t{0}}) out.push_back({model, p, s, e, chunk});
  return out;
}

std::string run_case_name(const ::testing::TestParamInfo<RunCase>& info) {
  const RunCase& c = info.param;
  std::string name = c.model + "_" + to_string(c.precision) + "_" + to_string(c.sampler) + "_" +
                     to_string(c.error) + "_" + (c.cuda_chunk == 0 ? std::string("all") : std::to_string(c.cuda_chunk));
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaFusedRun, ::testing::ValuesIn(all_run_cases()), run_case_name);

/// The fused path on every lane layout, with coefficients in shared memory and (K = 300, d = 64:
/// 77 KB in float) read from global memory.
TEST(CudaFused, ShapesMatchCpu) {
  GMMDIFF_REQUIRE_GPU();
  struct Shape {
    int d, K;
  };
  const std::vector<Shape> shapes = {{1, 5}, {3, 70}, {21, 5}, {40, 70}, {128, 5}, {130, 70},
                                     {300, 5}, {512, 3}, {64, 300}};
  for (const Shape& sh : shapes)
    for (const std::string& f : {std::string("iso-varying"), std::string("diagonal")})
      for (Precision p : {Precision::FP32, Precision::FP64}) {
        const Mixture m = model_for(f, sh.d, sh.K);
        SampleOptions o = options(p, SamplerKind::DDPM, ScoreErrorKind::Gaussian, 300);
        const Schedule sched = schedule_T(12);
        std::ostringstream tr;
        tr << "model " << f << " d " << sh.d << " K " << sh.K << " precision " << to_string(p) << " n " << o.n
           << " T " << sched.T << " path fused";
        SCOPED_TRACE(tr.str());
        auto cpu = make_backend("cpu", 2);
        auto gpu = make_backend("cuda");
        gpu->set_step_path("fused");
        PlacedSink a(o.n, m.d, p), b(o.n, m.d, p);
        run_sampler(m, sched, o, *cpu, a);
        run_sampler(m, sched, o, *gpu, b);
        EXPECT_EQ(gpu->step_path(), "cuda-fused");
        expect_rows_close(a.y, b.y, m.d, tol_for(p));
      }
}

TEST(CudaFused, MultiStepMatchesSingleStepBitwise) {
  GMMDIFF_REQUIRE_GPU();
  for (const std::string& f : families())
    for (Precision p : {Precision::FP32, Precision::FP64}) {
      SCOPED_TRACE("model " + f + " precision " + to_string(p));
      const Mixture m = model_for(f, 21, 9);
      const Schedule sched = schedule_T(25);
      const SampleOptions o = options(p, SamplerKind::DDPM, ScoreErrorKind::Bias, 500);
      const std::vector<StepCoeffs> steps = all_steps(m, sched, o);
      auto gpu = make_backend("cuda");
      gpu->set_step_path("fused");
      gpu->begin(run_shape(m, p, o.seed, 512), m);
      // One at a time.
      gpu->init_chunk(1000, 500);
      for (const StepCoeffs& c : steps) gpu->step(c);
      const std::vector<double> one = download_double(*gpu, m.d, p);
      // All in one call.
      gpu->init_chunk(1000, 500);
      ASSERT_TRUE(gpu->step_many(steps.data(), steps.size()));
      expect_bitwise_equal(one, download_double(*gpu, m.d, p), "step_many(all)");
      // Uneven slices.
      gpu->init_chunk(1000, 500);
      for (std::size_t at = 0; at < steps.size();) {
        const std::size_t n = std::min<std::size_t>(7, steps.size() - at);
        ASSERT_TRUE(gpu->step_many(steps.data() + at, n));
        at += n;
      }
      expect_bitwise_equal(one, download_double(*gpu, m.d, p), "step_many(slices of 7)");
      // The products path declines step_many.
      gpu->set_step_path("products");
      EXPECT_FALSE(gpu->step_many(steps.data(), steps.size()));
    }
}

TEST(CudaFused, ChunkSizesAgreeBitwise) {
  GMMDIFF_REQUIRE_GPU();
  const Mixture m = model_for("diagonal", 7, 5);
  const Schedule sched = schedule_T(20);
  for (Precision p : {Precision::FP32, Precision::FP64}) {
    SCOPED_TRACE(std::string("precision ") + to_string(p));
    SampleOptions o = options(p, SamplerKind::DDPM, ScoreErrorKind::Gaussian, 1000);
    auto gpu = make_backend("cuda");
    gpu->set_step_path("fused");
    PlacedSink a(o.n, m.d, p), b(o.n, m.d, p), c(o.n, m.d, p);
    o.chunk = 0;
    run_sampler(m, sched, o, *gpu, a);
    o.chunk = 256;
    run_sampler(m, sched, o, *gpu, b);
    o.chunk = 768;
    run_sampler(m, sched, o, *gpu, c);
    expect_bitwise_equal(a.y, b.y, "chunk 256 against one chunk");
    expect_bitwise_equal(a.y, c.y, "chunk 768 against one chunk");
  }
}

TEST(CudaFused, MeasurementsArePositiveAndFinite) {
  GMMDIFF_REQUIRE_GPU();
  auto be = make_backend("cuda");
  const Mixture m = model_for("iso-uniform", 16, 8);
  be->set_step_path("fused");
  be->begin(run_shape(m, Precision::FP32, 3, 1 << 16), m);
  be->init_chunk(0, 1 << 16);
  const SampleOptions o = options(Precision::FP32, SamplerKind::DDPM, ScoreErrorKind::None, 1 << 16);
  const std::vector<StepCoeffs> steps = all_steps(m, schedule_T(10), o);
  const double t = be->time_seconds([&] { be->step_many(steps.data(), steps.size()); });
  EXPECT_TRUE(std::isfinite(t) && t > 0) << t;
  be->synchronize();
  const double bw = be->copy_bandwidth(std::size_t{64} << 20);
  EXPECT_TRUE(std::isfinite(bw) && bw > 1e9) << bw;  // any GPU copies more than 1 GB/s
  const double f32 = be->flop_limit(Precision::FP32), f64 = be->flop_limit(Precision::FP64);
  EXPECT_TRUE(std::isfinite(f32) && f32 > 1e11) << f32;
  EXPECT_TRUE(std::isfinite(f64) && f64 > 0) << f64;
  EXPECT_GE(f32, f64);
  RecordProperty("copy_bandwidth_GBps", std::to_string(bw / 1e9));
  RecordProperty("fp32_peak_TFLOPs", std::to_string(f32 / 1e12));
  RecordProperty("fp64_peak_TFLOPs", std::to_string(f64 / 1e12));
  RecordProperty("fused_10_steps_65536x16_s", std::to_string(t));
}

/// Tensor-core modes of the products path: they run, say so in the path, and stay finite. Their
/// distance from the CPU's float32 particles is recorded, not bounded (docs/cuda.md: to measure
/// on TV).
TEST(CudaFused, TensorCoreModesRunAndReport) {
  GMMDIFF_REQUIRE_GPU();
  const Mixture m = model_for("iso-varying", 32, 64);
  const Schedule sched = schedule_T(20);
  SampleOptions o = options(Precision::FP32, SamplerKind::DDPM, ScoreErrorKind::None, 1000);
  auto cpu = make_backend("cpu", 2);
  PlacedSink ref(o.n, m.d, o.precision);
  run_sampler(m, sched, o, *cpu, ref);
  for (const std::string mode : {"tf32", "bf16", "bf16x9"}) {
    SCOPED_TRACE("products-" + mode);
    auto gpu = make_backend("cuda");
    if (mode == "bf16x9" && cuda_devices()[0].cc_major < 10) {
      // Refused before compute capability 10.0 (step_plan.hpp): never run, never reported.
      EXPECT_THROW(gpu->set_step_path("products-" + mode), Error);
      continue;
    }
    gpu->set_step_path("products-" + mode);
    PlacedSink out(o.n, m.d, o.precision);
    const RunSummary sum = run_sampler(m, sched, o, *gpu, out);
    EXPECT_EQ(sum.path, "cuda-gemm-" + mode);
    double scale = 1, worst = 0;
    for (std::size_t i = 0; i < ref.y.size(); ++i) {
      ASSERT_TRUE(std::isfinite(out.y[i])) << "value " << i;
      scale = std::max(scale, std::abs(ref.y[i]));
      worst = std::max(worst, std::abs(ref.y[i] - out.y[i]));
    }
    RecordProperty("products-" + mode + "_max_rel_diff", std::to_string(worst / scale));
  }
}

}  // namespace
