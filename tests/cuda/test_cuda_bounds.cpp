// gmmdiff: the CUDA bounds kernels (cuda/cuda_bounds.cu, cuda/kernels/bounds_kernels.cu) against
// their oracle, the CPU kernels (host/bounds/bounds_cpu.cpp).
//
// Without a device (label unit):
//  - CudaBoundsEmulation: the CUDA pipeline replayed on the host step by step, with the kernels'
//    own per-thread and per-lane code (cuda/kernels/bounds_lane.hpp: the forward blocks, the step
//    term's lanes and their butterfly, the row sums, the log-sum-exp over m; bounds_math.hpp in the
//    interleaved layout the kernels use, the fallback list and its routes), naive products in
//    place of cuBLAS: its per-outer-draw log R_m and per-particle log p - log q against the CPU
//    kernels', and the figures of path_bound and exact_density; the HD fallbacks against the host
//    API (bounds/score_jacobian.hpp); the interleaved accessors against the dense functions, bit
//    for bit;
//  - CudaBoundsPlan: the memory plan and the packed mixture tables.
// With a device (label gpu, skipped without one): CudaBounds, the real kernels against the CPU's
// per-particle sums and figures (K = 1 against the closed form too, and a two-point model), chunk
// sizes, the fold and the fallbacks, out of memory, and `gmmdiff bracket --backend cuda` against
// `--backend cpu`, and `gmmdiff bench --backend cuda`'s bounds rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bounds/score_jacobian.hpp"
#include "cuda/bounds_plan.hpp"
#include "cuda/kernels/bounds_lane.hpp"
#include "cuda/kernels/weights_lane.hpp"
#include "gmmdiff/bench.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "util/backend_util.hpp"
#include "util/cli_util.hpp"
#include "util/model_util.hpp"

namespace {

using namespace gmmdiff;
using detail::DenseMat;
using detail::StridedMat;
using detail::StridedVec;

// ---- tolerances ----
// The per-particle sums of the CPU and the CUDA kernels differ only by rounding: the forward noise
// (the CPU's libmvec Box-Muller against libm's on the host emulation, CUDA's on a device: each
// within 2 ulp), the products (OpenBLAS against naive or cuBLAS sums), the lanes' butterfly
// against the CPU's vector sums, FMA contraction. A log-weight is a sum of O(T) terms of size up
// to O(d), and |log R_m| may be O(1) while its terms add up to O(1e4): measured on the emulation
// (CudaBoundsEmulation prints them), at most 5.5e-12 absolute (2e-12 where |log R_m| <= 1) for the
// path bound and 4e-13 for the flow. The bounds leave a factor of about 100 and 1000 for a device.
constexpr double kLogWeightTol = 2e-10;  // log R_m of an outer draw, absolute x max(1, |value|)
constexpr double kLogRatioTol = 1e-9;    // log p - log q of a ddim particle, likewise (the map amplifies)
constexpr double kFigureTol = 1e-9;      // U_TV, U_KL, exact TV and KL means and standard errors
// The HD fallbacks against the host API: the same arithmetic in the same order (the Jacobi
// rotations, the dense matrix): equal to a few ulp of the log-determinant.
constexpr double kFallbackTol = 1e-12;
// K = 1: the ddim exact TV's CI and the ddpm upper bound against the closed-form TV.
constexpr double kSigmas = 4.0;

using test::schedule;
using test::isotropic;
using test::diag3;
using test::two_point;

std::string describe(const SampleOptions& o, const std::string& sched, const Mixture& m) {
  std::ostringstream os;
  os << sched << " " << to_string(o.sampler) << "/" << to_string(o.variance) << " stop=" << o.stop
     << " err=" << to_string(o.score_error.kind) << " eps=" << o.score_error.eps << " seed=" << o.seed << " d=" << m.d
     << " K=" << m.K << (m.cov == Covariance::Diagonal ? " diagonal" : " isotropic");
  return os.str();
}

/// The sum over W lanes as the kernels' butterfly forms it (lane l adds lane l ^ o's value at each
/// level); lane 0's result.
double butterfly_sum(std::vector<double> v) {
  const int W = static_cast<int>(v.size());
  for (int o = W / 2; o > 0; o /= 2) {
    std::vector<double> next(v.size());
    for (int l = 0; l < W; ++l) next[l] = v[l] + v[l ^ o];
    v.swap(next);
  }
  return v[0];
}

/// |x|^2 of a row as row_sumsq_kernel forms it: W lanes' shares, then the butterfly.
double lanes_sumsq(const double* x, int d) {
  const int W = gpu::bounds_row_lanes(d);
  std::vector<double> part(W);
  for (int l = 0; l < W; ++l) part[l] = gpu::weights_lane_rsq<double>(x, d, l, W);
  return butterfly_sum(part);
}

/// C [rows, K] = A [rows, d] B^T (B [K, d]), naive sums in j order (cuBLAS's stand-in).
void gemm_abt(const std::vector<double>& A, const double* B, std::size_t rows, int K, int d, std::vector<double>& C) {
  C.assign(rows * K, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (int k = 0; k < K; ++k) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += A[r * d + j] * B[std::size_t(k) * d + j];
      C[r * K + k] = s;
    }
}
/// C [rows, d] = A [rows, K] B (B [K, d]).
void gemm_ab(const std::vector<double>& A, const double* B, std::size_t rows, int K, int d, std::vector<double>& C) {
  C.assign(rows * d, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (int j = 0; j < d; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += A[r * K + k] * B[std::size_t(k) * d + j];
      C[r * d + j] = s;
    }
}

/// The CUDA bounds kernels replayed on the host: the sequence of cuda/cuda_bounds.cu, each kernel
/// a loop over its threads (and lanes) calling the kernel's own code.
class EmulatedCudaBounds final : public BoundsKernels {
 public:
  std::string name() const override { return "cuda-emulated"; }
  std::string device_name() const override { return "host"; }
  uint64_t max_rows(int, int) const override { return uint64_t(1) << 22; }
  uint64_t path_unit(int) const override { return 1; }
  uint64_t flow_unit() const override { return 1; }
  int fallbacks = 0;  ///< particles the determinant lemma did not decide, over all steps

  void path_begin(const PathPlan& plan, uint64_t first, uint64_t count) override {
    path_ = plan;
    first_ = first;
    count_ = count;
    const uint64_t M = plan.M;
    rows_ = count * M;
    const int d = plan.d;
    tab_ = gpu::pack_mixture_tables(plan.outer);
    X_.assign(rows_ * d, 0.0);
    Z_.assign(rows_ * d, 0.0);
    acc_.assign(rows_, 0.0);
    const double* v = tab_.values.data();
    for (uint64_t c = 0; c < count; ++c)  // path_outer_kernel
      acc_[c * M] = -gpu::path_outer_draw(plan.seed, first + c, tab_.K, tab_.d, tab_.diagonal, v + tab_.cum,
                                          v + tab_.means, v + tab_.sd, v + tab_.inv_var, v + tab_.logc,
                                          X_.data() + c * M * d);
    for (uint64_t idx = 0; idx < rows_ * d; ++idx) {  // path_spread_kernel
      const uint64_t r = idx / d, j = idx % d, m = r % M;
      if (m == 0) continue;
      X_[idx] = X_[(r - m) * d + j];
      if (j == 0) acc_[r] = acc_[r - m];
    }
  }

  void path_step(const PathStep& st) override {
    const StepCoeffs& c = st.c;
    const int d = path_.d, nb = (d + 3) / 4;
    for (uint64_t idx = 0; idx < rows_ * nb; ++idx) {  // path_forward_kernel
      const uint64_t r = idx / nb;
      const int b = static_cast<int>(idx % nb);
      gpu::path_forward_block(X_.data() + r * d, Z_.data() + r * d, path_.seed,
                              gpu::path_row_particle(first_, r, path_.M), static_cast<uint32_t>(c.t), b, d,
                              st.terms.sqrt_alpha, st.terms.sqrt_beta);
    }
    score(c, X_);
    const int W = gpu::bounds_row_lanes(d);
    for (uint64_t r = 0; r < rows_; ++r) {  // path_term_kernel
      std::vector<double> ww(W), we(W), ee(W);
      const uint64_t o = r * d;
      for (int l = 0; l < W; ++l) {
        const gpu::PathTermSums p =
            gpu::path_term_lane(X_.data() + o, Z_.data() + o, S1_.data() + o, c.diagonal ? S2_.data() + o : nullptr,
                                c.diagonal ? 0.0 : s2_[r], c.bias_dir.empty() ? nullptr : c.bias_dir.data(),
                                c.score_scale, d, l, W);
        ww[l] = p.ww;
        we[l] = p.we;
        ee[l] = p.ee;
      }
      acc_[r] += detail::path_step_term(st.terms, butterfly_sum(ww), butterfly_sum(we), butterfly_sum(ee));
    }
  }

  void path_end(double* log_rm) override {
    const int d = path_.d, P = static_cast<int>(path_.prefixes.size());
    for (uint64_t r = 0; r < rows_; ++r) acc_[r] = acc_[r] + -0.5 * lanes_sumsq(X_.data() + r * d, d);
    for (uint64_t c = 0; c < count_; ++c)
      gpu::path_prefix_log_means(acc_.data() + c * path_.M, path_.M, path_.prefixes.data(), P, log_rm + c * P);
  }

  void flow_begin(const FlowPlan& plan, uint64_t first, uint64_t count) override {
    flow_ = plan;
    first_ = first;
    count_ = rows_ = count;
    fold_ = 0;
    const int d = plan.d;
    tab_ = gpu::pack_mixture_tables(plan.reference);
    X_.assign(rows_ * d, 0.0);
    acc_.assign(rows_, 0.0);
    for (uint64_t r = 0; r < rows_; ++r) {  // init_normal_kernel, then row_sumsq_kernel
      for (int b = 0; 4 * b < d; ++b) {
        double z[4];
        detail::philox_normal4<double>(plan.seed, kStreamInit, first + r, 0u, static_cast<uint32_t>(b), z);
        for (int q = 0; q < 4 && 4 * b + q < d; ++q) X_[r * d + 4 * b + q] = z[q];
      }
      acc_[r] = -0.5 * lanes_sumsq(X_.data() + r * d, d);
    }
  }

  void flow_step(const FlowStep& st) override {
    const StepCoeffs& c = st.c;
    const int d = flow_.d, K = flow_.K;
    const uint64_t n = rows_;
    std::vector<double> rsq(n);
    if (!c.diagonal)
      for (uint64_t r = 0; r < n; ++r) rsq[r] = lanes_sumsq(X_.data() + r * d, d);
    score(c, X_);
    // The determinant: a thread a particle, the matrices interleaved (stride n), the fallback list.
    std::vector<double> Ms(n * K * K), As(n * K * K), vs(n * K), Us(c.diagonal ? n * K * d : 0);
    std::vector<uint64_t> list;
    for (uint64_t r = 0; r < n; ++r) {
      double ld = 0;
      bool decided = false;
      if (!c.diagonal) {
        const StridedMat<double> M{Ms.data() + r, K, n}, A{As.data() + r, K, n};
        const StridedVec<double> v{vs.data() + r, n};
        double a = 0;
        const gpu::FlowLogDet L = gpu::flow_logdet_isotropic(K, d, G_.data() + r * K, G1_.data() + r * K, rsq[r],
                                                             c.Q.data(), st.PP.data(), st.kappa_j, M, A, v, &a);
        decided = L.decided;
        ld = L.value;
        if (!decided) v[0] = a;
      } else {
        const StridedMat<double> U{Us.data() + r, d, n}, A{As.data() + r, K, n};
        const gpu::FlowLogDet L =
            gpu::flow_logdet_diagonal(K, d, G_.data() + r * K, X_.data() + r * d, c.P.data(), c.Q.data(),
                                      S1_.data() + r * d, S2_.data() + r * d, st.kappa_j, U, A);
        decided = L.decided;
        ld = L.value;
      }
      if (decided) acc_[r] = gpu::flow_acc_after(acc_[r], st.d_log_inv_sqrt_alpha, ld);
      else list.push_back(r);
    }
    fallbacks += static_cast<int>(list.size());
    std::vector<double> dense(std::size_t(d) * d);
    for (uint64_t r : list) {  // flow_fallback_kernel
      double ld = 0;
      bool ok;
      if (!c.diagonal) {
        const StridedMat<double> M{Ms.data() + r, K, n}, A{As.data() + r, K, n};
        const StridedVec<double> v{vs.data() + r, n};
        ok = gpu::flow_logdet_fallback_isotropic(K, d, v[0], st.kappa_j, M, A, &ld);
      } else {
        const StridedMat<double> U{Us.data() + r, d, n};
        ok = detail::log_det_diagonal_dense(K, d, S2_.data() + r * d, U, st.kappa_j, DenseMat<double>{dense.data(), d},
                                            &ld);
      }
      if (!ok) {
        fold_ = std::max(fold_, c.t);
        ld = 0;
      }
      acc_[r] = gpu::flow_acc_after(acc_[r], st.d_log_inv_sqrt_alpha, ld);
    }
    const detail::StepScalars<double> sc{c.kappa, c.inv_sqrt_alpha, 0.0, c.score_scale, 0.0,
                                         static_cast<uint32_t>(c.t), flow_.seed};
    for (uint64_t r = 0; r < n; ++r)  // update_kernel
      for (int j = 0; j < d; ++j) {
        const uint64_t at = r * d + j;
        const double s = detail::score_coord<double>(X_[at], S1_[at], c.diagonal ? S2_[at] : s2_[r]);
        X_[at] = detail::update_coord<double>(X_[at], s, c.bias_dir.empty() ? 0.0 : c.bias_dir[j], 0.0, 0.0, sc);
      }
  }

  int flow_end(double* log_ratio) override {
    const double* v = tab_.values.data();
    for (uint64_t r = 0; r < rows_; ++r)
      log_ratio[r] = detail::mixture_log_density_no2pi(tab_.K, tab_.d, tab_.diagonal, v + tab_.logc, v + tab_.means,
                                                       v + tab_.inv_var, X_.data() + r * flow_.d) -
                     acc_[r];
    return fold_;
  }

 private:
  /// The score's products at the rows of X: G (weights), G1 (X P^T), S1, S2 (diagonal), s2.
  void score(const StepCoeffs& c, const std::vector<double>& X) {
    const int d = static_cast<int>(c.P.size() / c.bias.size()), K = static_cast<int>(c.bias.size());
    const uint64_t n = rows_;
    const detail::QMode mode =
        c.diagonal ? detail::QMode::Diagonal : (c.uniform_q ? detail::QMode::Uniform : detail::QMode::Isotropic);
    gemm_abt(X, c.P.data(), n, K, d, G_);
    G1_ = G_;
    std::vector<double> G2;
    if (c.diagonal) {
      std::vector<double> sq(X.size());
      for (std::size_t i = 0; i < X.size(); ++i) sq[i] = X[i] * X[i];
      gemm_abt(sq, c.Q.data(), n, K, d, G2);
    }
    s2_.assign(n, 0.0);
    for (uint64_t r = 0; r < n; ++r) {
      const double rsq = mode == detail::QMode::Isotropic ? lanes_sumsq(X.data() + r * d, d) : 0.0;
      const double wq = detail::posterior_weights_row<double>(G_.data() + r * K, c.diagonal ? G2.data() + r * K : nullptr,
                                                              rsq, c.bias.data(), c.Q.data(), K, mode);
      s2_[r] = gpu::weights_row_s2<double>(wq, c.Q.data(), mode);
    }
    gemm_ab(G_, c.P.data(), n, K, d, S1_);
    if (c.diagonal) gemm_ab(G_, c.Q.data(), n, K, d, S2_);
  }

  PathPlan path_;
  FlowPlan flow_;
  gpu::PackedMixtureTables tab_;
  uint64_t first_ = 0, count_ = 0, rows_ = 0;
  int fold_ = 0;
  std::vector<double> X_, Z_, acc_, G_, G1_, S1_, S2_, s2_;
};

/// The path kernels over outer draws [first, first + n) in one chunk: log R per draw and prefix.
std::vector<double> path_sums(const Mixture& target, const Schedule& s, const SampleOptions& o, uint64_t n, int M,
                              const std::vector<int>& prefixes, BoundsKernels& kr) {
  const PathPlan plan = make_path_plan(target, s, o, n, M, prefixes);
  const Mixture sm = score_model(target, o.score_error, o.seed);
  const std::vector<double> bu =
      o.score_error.kind == ScoreErrorKind::Bias ? bias_direction(target.d, o.seed) : std::vector<double>();
  std::vector<double> out(n * prefixes.size());
  kr.path_begin(plan, 0, n);
  for (int t = o.stop + 1; t <= s.T; ++t)
    if (one_minus_alpha(s, t) > 0) kr.path_step(make_path_step(sm, s, t, o, bu));
  kr.path_end(out.data());
  return out;
}

/// The flow kernels over particles [0, n) in one chunk: log p - log q per particle, and the fold step.
std::vector<double> flow_sums(const Mixture& target, const Schedule& s, const SampleOptions& o, uint64_t n,
                              BoundsKernels& kr, int* fold) {
  const FlowPlan plan = make_flow_plan(target, s, o, n);
  const Mixture sm = score_model(target, o.score_error, o.seed);
  const std::vector<double> bu =
      o.score_error.kind == ScoreErrorKind::Bias ? bias_direction(target.d, o.seed) : std::vector<double>();
  std::vector<double> out(n);
  kr.flow_begin(plan, 0, n);
  for (int t = s.T; t > o.stop; --t)
    if (one_minus_alpha(s, t) > 0) kr.flow_step(make_flow_step(sm, s, t, o, bu));
  *fold = kr.flow_end(out.data());
  return out;
}

/// Every value within tol x max(1, |cpu value|); returns the largest absolute difference. A
/// failure names the case and the worst index.
double expect_sums_close(const std::vector<double>& cpu, const std::vector<double>& other, double tol,
                         const std::string& what) {
  EXPECT_EQ(cpu.size(), other.size()) << what;
  double worst = 0;
  std::size_t at = 0;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < std::min(cpu.size(), other.size()); ++i) {
    const double e = std::isnan(cpu[i]) != std::isnan(other[i]) ? INFINITY
                     : std::isnan(cpu[i])                        ? 0.0
                                                                 : std::abs(cpu[i] - other[i]);
    if (e > tol * std::max(1.0, std::abs(cpu[i]))) ++bad;
    if (e > worst) {
      worst = e;
      at = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << cpu.size() << " values differ by more than " << tol
                     << " x max(1, |value|); worst at " << at << ": cpu " << cpu[at] << ", other " << other[at];
  return worst;
}

struct PathCase {
  Mixture m;
  std::string sched;
  int T;
  Variance v;
  int stop;
  ScoreErrorKind err;
  double eps;
};

std::vector<PathCase> path_cases() {
  const Mixture m3 = isotropic(3, {{1.0, 0.0, -0.5}, {-0.8, 0.6, 0.1}, {0.0, -1.2, 0.9}}, {0.7, 1.1, 0.5}, {0.2, 0.3, 0.5});
  const Mixture m7 = isotropic(7, {{1, 0, 0, 0, 0, 0.5, 0}, {0, -1, 0.5, 0, 0, 0, 1}}, {0.8, 0.8}, {0.6, 0.4});
  return {{isotropic(1, {{2.0}}, {0.5}, {1.0}), "lcw", 24, Variance::Beta, 1, ScoreErrorKind::None, 0},
          {two_point(4, 2.0, 0.5), "lcw", 24, Variance::Beta, 1, ScoreErrorKind::None, 0},
          {m3, "linear", 12, Variance::Posterior, 1, ScoreErrorKind::Scale, 0.2},
          {m3, "linear", 12, Variance::Inside, 0, ScoreErrorKind::Weights, 0.5},
          {m7, "cosine", 16, Variance::Beta, 0, ScoreErrorKind::Bias, 0.4},
          {m7, "lcw", 16, Variance::Beta, 1, ScoreErrorKind::Gaussian, 0.7},
          {diag3(), "linear", 12, Variance::Beta, 1, ScoreErrorKind::Means, 0.3},
          {diag3(), "cosine", 16, Variance::Posterior, 1, ScoreErrorKind::Bias, 0.5}};
}

struct FlowCase {
  Mixture m;
  std::string sched;
  int T;
  int stop;
  ScoreErrorKind err;
  double eps;
};

std::vector<FlowCase> flow_cases() {
  const Mixture m3 = isotropic(3, {{1.0, 0.0, -0.5}, {-0.8, 0.6, 0.1}, {0.0, -1.2, 0.9}}, {0.7, 1.1, 0.5}, {0.2, 0.3, 0.5});
  return {{isotropic(3, {{1.5, -0.5, 0.25}}, {0.6}, {1.0}), "lcw", 24, 1, ScoreErrorKind::None, 0},
          {two_point(1, 2.0, 0.5), "lcw", 32, 1, ScoreErrorKind::None, 0},
          {two_point(5, 2.0, 1.0), "linear", 20, 0, ScoreErrorKind::Bias, 0.3},
          {m3, "cosine", 16, 1, ScoreErrorKind::Scale, 0.3},
          {m3, "linear", 12, 0, ScoreErrorKind::Means, 0.2},
          {diag3(), "linear", 12, 1, ScoreErrorKind::None, 0},
          {diag3(), "lcw", 16, 0, ScoreErrorKind::Weights, 0.4}};
}

SampleOptions path_options(const PathCase& c) {
  SampleOptions o;
  o.sampler = SamplerKind::DDPM;
  o.variance = c.v;
  o.stop = c.stop;
  o.score_error = {c.err, c.eps};
  o.seed = 17;
  return o;
}

SampleOptions flow_options(const FlowCase& c) {
  SampleOptions o;
  o.sampler = SamplerKind::DDIM;
  o.stop = c.stop;
  o.score_error = {c.err, c.eps};
  o.seed = 23;
  return o;
}

void expect_meanse_close(const MeanSe& a, const MeanSe& b, const std::string& what) {
  EXPECT_NEAR(a.mean, b.mean, kFigureTol * std::max(1.0, std::abs(a.mean))) << what << " mean";
  EXPECT_NEAR(a.se, b.se, kFigureTol * std::max(1.0, std::abs(a.se))) << what << " se";
}

// ======================= without a device: the emulation =======================

TEST(CudaBoundsEmulation, PathLogWeightsMatchCpuKernels) {
  auto cpu = make_bounds_kernels("cpu", 2);
  double worst = 0;
  for (const PathCase& c : path_cases()) {
    const Schedule s = schedule(c.sched, c.T);
    const SampleOptions o = path_options(c);
    EmulatedCudaBounds emu;
    const std::vector<int> prefixes = {1, 3, 6};
    const std::vector<double> want = path_sums(c.m, s, o, 9, 6, prefixes, *cpu);
    const std::vector<double> got = path_sums(c.m, s, o, 9, 6, prefixes, emu);
    const double w = expect_sums_close(want, got, kLogWeightTol, describe(o, c.sched, c.m));
    double scale = 1;
    for (double v : want) scale = std::max(scale, std::abs(v));
    std::cout << "[ measured ] " << describe(o, c.sched, c.m) << ": max |diff| " << w << ", max |log R_m| " << scale << "\n";
    worst = std::max(worst, w);
  }
  std::cout << "[ measured ] largest |log R_m (cpu) - log R_m (emulated cuda)| = " << worst << "\n";
}

TEST(CudaBoundsEmulation, FlowLogRatiosMatchCpuKernels) {
  auto cpu = make_bounds_kernels("cpu", 2);
  double worst = 0;
  for (const FlowCase& c : flow_cases()) {
    const Schedule s = schedule(c.sched, c.T);
    const SampleOptions o = flow_options(c);
    EmulatedCudaBounds emu;
    int fold_cpu = -1, fold_emu = -1;
    const std::vector<double> want = flow_sums(c.m, s, o, 40, *cpu, &fold_cpu);
    const std::vector<double> got = flow_sums(c.m, s, o, 40, emu, &fold_emu);
    EXPECT_EQ(fold_cpu, 0) << describe(o, c.sched, c.m);
    EXPECT_EQ(fold_emu, 0) << describe(o, c.sched, c.m);
    worst = std::max(worst, expect_sums_close(want, got, kLogRatioTol, describe(o, c.sched, c.m)));
  }
  std::cout << "[ measured ] largest |log p/q (cpu) - log p/q (emulated cuda)| = " << worst << "\n";
}

TEST(CudaBoundsEmulation, FiguresMatchCpuAcrossChunks) {
  // The figures of path_bound and exact_density: one chunk and several (of 1 and 7 outer draws or
  // particles) on the emulation against the CPU kernels.
  auto cpu = make_bounds_kernels("cpu", 2);
  const Mixture m = two_point(3, 2.0, 0.5);
  const Schedule s = schedule("lcw", 20);
  SampleOptions o;
  o.seed = 5;
  BoundsOptions bo;
  bo.n = 23;
  bo.M = 8;
  const PathBound want = path_bound(m, s, o, bo, *cpu);
  for (uint64_t chunk : {uint64_t(0), uint64_t(1), uint64_t(7)}) {
    EmulatedCudaBounds emu;
    bo.chunk = chunk;
    const PathBound got = path_bound(m, s, o, bo, emu);
    const std::string what = "path bound, chunk " + std::to_string(chunk);
    expect_meanse_close(want.tv, got.tv, what + " U_TV(M)");
    expect_meanse_close(want.tv_quarter, got.tv_quarter, what + " U_TV(M/4)");
    expect_meanse_close(want.kl, got.kl, what + " U_KL(M)");
    EXPECT_EQ(want.steps, got.steps);
  }
  o.sampler = SamplerKind::DDIM;
  bo = BoundsOptions();
  bo.n = 50;
  const ExactDensity want_ex = exact_density(m, s, o, bo, *cpu);
  for (uint64_t chunk : {uint64_t(0), uint64_t(7)}) {
    EmulatedCudaBounds emu;
    bo.chunk = chunk;
    const ExactDensity got = exact_density(m, s, o, bo, emu);
    expect_meanse_close(want_ex.tv, got.tv, "exact TV, chunk " + std::to_string(chunk));
    expect_meanse_close(want_ex.kl, got.kl, "exact KL, chunk " + std::to_string(chunk));
  }
}

TEST(CudaBoundsEmulation, FallbacksAndFoldsMatchCpuKernels) {
  // A scale error with eps >= 1 makes 1 - kappa a <= 0 at the last steps: with d <= K the
  // spectrum decides (the Jacobi route, some particles still positive definite), with d > K the
  // step folds; diagonal components take the dense d x d route. The emulation must take the same
  // routes, find the same fold step and, where nothing folds, the same log-densities.
  auto cpu = make_bounds_kernels("cpu", 2);
  struct C {
    Mixture m;
    double eps;
    int T;
  };
  const std::vector<C> cases = {
      {isotropic(2, {{1.0, 0.0}, {-1.0, 0.5}, {0.0, -1.0}}, {0.3, 0.35, 0.3}, {0.3, 0.3, 0.4}), 6.0, 6},
      {isotropic(4, {{1.0, 0.0, 0.0, 0.0}, {-1.0, 0.5, 0.0, 0.0}}, {0.3, 0.3}, {0.5, 0.5}), 6.0, 6},
      {diag3(), 8.0, 5}};
  for (const C& c : cases) {
    SampleOptions o;
    o.sampler = SamplerKind::DDIM;
    o.score_error = {ScoreErrorKind::Scale, c.eps};
    o.seed = 3;
    o.stop = 0;
    const Schedule s = schedule("linear", c.T);
    EmulatedCudaBounds emu;
    int fold_cpu = -1, fold_emu = -1;
    const std::vector<double> want = flow_sums(c.m, s, o, 64, *cpu, &fold_cpu);
    const std::vector<double> got = flow_sums(c.m, s, o, 64, emu, &fold_emu);
    const std::string what = describe(o, "linear T=" + std::to_string(c.T), c.m);
    EXPECT_GT(emu.fallbacks, 0) << what << ": the case should take a fallback route";
    EXPECT_EQ(fold_cpu, fold_emu) << what;
    if (fold_cpu == 0) expect_sums_close(want, got, kLogRatioTol, what);
    std::cout << "[ measured ] " << what << ": " << emu.fallbacks << " fallbacks, fold step " << fold_emu << "\n";
  }
}

TEST(CudaBoundsEmulation, HdFallbacksMatchTheHostApi) {
  // bounds::log_det_i_plus_kappa_j (host/bounds/score_jacobian.cpp) against the HD routes the
  // fallback kernel runs, at random points where the determinant lemma fails.
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  int pd = 0, not_pd = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const bool diagonal = trial % 2 == 1;
    const int K = 2 + trial % 5, d = diagonal ? 1 + trial % 6 : 1 + trial % K;
    Mixture m;
    m.K = K;
    m.d = d;
    m.weights.assign(K, 1.0 / K);
    for (int i = 0; i < K * d; ++i) m.means.push_back(nd(rng));
    if (diagonal) {
      m.cov = Covariance::Diagonal;
      for (int i = 0; i < K * d; ++i) m.var_diag.push_back(0.05 + 0.3 * std::abs(nd(rng)));
    } else {
      for (int k = 0; k < K; ++k) m.sd.push_back(0.2 + 0.2 * std::abs(nd(rng)));
    }
    validate(m);
    const Schedule s = schedule("linear", 4);
    SampleOptions o;
    o.sampler = SamplerKind::DDIM;
    const StepCoeffs c = step_coeffs(m, s, 1, o, {});
    const bounds::JacobianStep js = bounds::jacobian_step(c, d, K);
    std::vector<double> y(d);
    for (double& v : y) v = 0.5 * nd(rng);
    bounds::JacobianAt ja;
    bounds::jacobian_at(js, y.data(), ja);
    // kappa large enough that the lemma fails: 1 - kappa a <= 0 (or some 1 - kappa D_jj <= 0).
    double dmax = ja.a;
    for (double v : ja.dvec) dmax = std::max(dmax, v);
    const double kappa = (1.0 + 0.5 * std::abs(nd(rng))) / dmax;
    const bounds::LogDet want = bounds::log_det_i_plus_kappa_j(ja, kappa);
    double ld = 0;
    bool ok;
    std::vector<double> A(std::size_t(K) * K), D(std::size_t(d) * d);
    if (!diagonal) {
      ASSERT_FALSE(detail::log_det_isotropic(K, d, ja.a, ja.M.data(), kappa, A.data(), &ld));
      ok = gpu::flow_logdet_fallback_isotropic(K, d, ja.a, kappa, DenseMat<const double>{ja.M.data(), K},
                                               DenseMat<double>{A.data(), K}, &ld);
    } else {
      ASSERT_FALSE(detail::log_det_diagonal(K, d, ja.dvec.data(), ja.U.data(), kappa, A.data(), &ld));
      ok = detail::log_det_diagonal_dense(K, d, ja.dvec.data(), DenseMat<const double>{ja.U.data(), d}, kappa,
                                          DenseMat<double>{D.data(), d}, &ld);
    }
    EXPECT_EQ(ok, want.positive_definite) << "trial " << trial << " K=" << K << " d=" << d << " kappa=" << kappa;
    if (ok && want.positive_definite) {
      EXPECT_NEAR(ld, want.value, kFallbackTol * std::max(1.0, std::abs(want.value)))
          << "trial " << trial << " K=" << K << " d=" << d;
      ++pd;
    } else {
      ++not_pd;
    }
  }
  // Both outcomes were exercised.
  EXPECT_GT(pd, 5);
  EXPECT_GT(not_pd, 5);
}

TEST(CudaBoundsEmulation, InterleavedLayoutGivesTheDenseBits) {
  // The determinant on a particle's matrices interleaved with 5 others equals, bit for bit, the
  // pointer (row-major) functions the CPU kernels call.
  std::mt19937_64 rng(11);
  std::normal_distribution<double> nd;
  const int K = 4, d = 6;
  const uint64_t stride = 6, r = 3;
  std::vector<double> w(K), g1(K), Q(K), PP(K * K), P(K * d), Qd(K * d), y(d), S1(d), S2(d);
  double sw = 0;
  for (double& v : w) sw += (v = std::abs(nd(rng)) + 0.1);
  for (double& v : w) v /= sw;
  for (double& v : g1) v = nd(rng);
  for (double& v : Q) v = 1.0 + std::abs(nd(rng));
  for (double& v : P) v = nd(rng);
  for (double& v : Qd) v = 1.0 + std::abs(nd(rng));
  for (double& v : y) v = nd(rng);
  for (double& v : S1) v = nd(rng);
  for (double& v : S2) v = 0.5 + std::abs(nd(rng));
  for (int j = 0; j < K; ++j)
    for (int k = 0; k < K; ++k) {
      double s = 0;
      for (int i = 0; i < d; ++i) s += P[j * d + i] * P[k * d + i];
      PP[j * K + k] = s;
    }
  const double ysq = 1.7, kappa = 0.05;
  std::vector<double> M(K * K), A(K * K), sc(K), Ms(stride * K * K, NAN), As(stride * K * K, NAN), vs(stride * K, NAN);
  const double a = detail::jacobian_gram_isotropic(K, w.data(), g1.data(), ysq, Q.data(), PP.data(), M.data(), sc.data());
  double ld = 0, ld_s = 0, a_s = 0;
  ASSERT_TRUE(detail::log_det_isotropic(K, d, a, M.data(), kappa, A.data(), &ld));
  const gpu::FlowLogDet L = gpu::flow_logdet_isotropic(K, d, w.data(), g1.data(), ysq, Q.data(), PP.data(), kappa,
                                                       StridedMat<double>{Ms.data() + r, K, stride},
                                                       StridedMat<double>{As.data() + r, K, stride},
                                                       StridedVec<double>{vs.data() + r, stride}, &a_s);
  ASSERT_TRUE(L.decided);
  ld_s = L.value;
  EXPECT_EQ(a, a_s);
  EXPECT_EQ(ld, ld_s);
  for (int e = 0; e < K * K; ++e) EXPECT_EQ(M[e], Ms[e * stride + r]) << "M element " << e;
  // Diagonal components.
  std::vector<double> U(K * d), Us(stride * K * d, NAN);
  detail::jacobian_rows_diagonal(K, d, w.data(), y.data(), P.data(), Qd.data(), S1.data(), S2.data(), U.data());
  ASSERT_TRUE(detail::log_det_diagonal(K, d, S2.data(), U.data(), kappa, A.data(), &ld));
  const gpu::FlowLogDet Ld =
      gpu::flow_logdet_diagonal(K, d, w.data(), y.data(), P.data(), Qd.data(), S1.data(), S2.data(), kappa,
                                StridedMat<double>{Us.data() + r, d, stride}, StridedMat<double>{As.data() + r, K, stride});
  ASSERT_TRUE(Ld.decided);
  EXPECT_EQ(ld, Ld.value);
  for (int e = 0; e < K * d; ++e) EXPECT_EQ(U[e], Us[e * stride + r]) << "U element " << e;
}

TEST(CudaBoundsEmulation, PrefixLogMeansAreTheCpuLoop) {
  // The log-sum-exp over m with prefixes, against a direct computation; NaN and -inf handled as
  // the CPU's LogSumExpAcc does.
  const std::vector<double> l = {-0.5, 0.25, -3.0, -INFINITY, 1.5, -0.75};
  const std::vector<int> prefixes = {1, 2, 4, 6};
  std::vector<double> out(prefixes.size());
  gpu::path_prefix_log_means(l.data(), l.size(), prefixes.data(), 4, out.data());
  for (std::size_t p = 0; p < prefixes.size(); ++p) {
    double s = 0;
    for (int m = 0; m < prefixes[p]; ++m) s += std::exp(l[m]);
    EXPECT_NEAR(out[p], std::log(s / prefixes[p]), 1e-15) << "prefix " << prefixes[p];
  }
  std::vector<double> ln = l;
  ln[2] = NAN;
  gpu::path_prefix_log_means(ln.data(), ln.size(), prefixes.data(), 4, out.data());
  EXPECT_FALSE(std::isnan(out[1]));
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_TRUE(std::isnan(out[3]));
}

// ======================= without a device: the plan =======================

TEST(CudaBoundsPlan, RowCostsAndRowsByHand) {
  // d = 16, K = 4: path 3d + K + 3 = 55 values (diagonal + d + K = 75); flow isotropic
  // 2d + K + 4 + K + 2K^2 + K = 80, diagonal 2d + K + 4 + d + K + K d + K^2 = 140.
  EXPECT_EQ(gpu::path_row_bytes(16, 4, false), 55u * 8);
  EXPECT_EQ(gpu::path_row_bytes(16, 4, true), 75u * 8);
  EXPECT_EQ(gpu::flow_row_bytes(16, 4, false), 80u * 8);
  EXPECT_EQ(gpu::flow_row_bytes(16, 4, true), 140u * 8);
  EXPECT_EQ(gpu::bounds_row_bytes(16, 4), 140u * 8);
  // K = 512, d = 64: the isotropic Gram and its factor (2 K^2) dominate: 4 MiB a particle.
  EXPECT_EQ(gpu::bounds_row_bytes(64, 512), std::max(gpu::flow_row_bytes(64, 512, false),
                                                     gpu::flow_row_bytes(64, 512, true)));
  EXPECT_GT(gpu::flow_row_bytes(64, 512, false), std::size_t(2) * 512 * 512 * 8);
  // Dense fallback slots: 64 MiB of d x d matrices, 1 to 256, none past kMaxDenseLogDetD.
  EXPECT_EQ(gpu::dense_fallback_slots(16), 256);
  EXPECT_EQ(gpu::dense_fallback_slots(1024), 8);
  EXPECT_EQ(gpu::dense_fallback_slots(4096), 1);
  EXPECT_EQ(gpu::dense_fallback_slots(4097), 0);
  // Rows for 140 GB free at d = 64, K = 16: (0.8 x 140e9 - fixed) / row bytes.
  const std::size_t free = std::size_t(140) * 1000 * 1000 * 1000;
  const double want = (0.8 * double(free) - double(gpu::bounds_fixed_bytes(64, 16))) / double(gpu::bounds_row_bytes(64, 16));
  EXPECT_EQ(gpu::bounds_rows_for(free, 64, 16), static_cast<uint64_t>(want));
  EXPECT_GT(gpu::bounds_rows_for(free, 64, 16), uint64_t(5) * 1000 * 1000);
  // Not one row: 0 (bounds.cpp then says that one chunk does not fit).
  EXPECT_EQ(gpu::bounds_rows_for(std::size_t(32) << 20, 64, 16), 0u);
  // Never past INT_MAX.
  EXPECT_LE(gpu::bounds_rows_for(std::size_t(1) << 60, 1, 1), uint64_t(INT_MAX));
}

TEST(CudaBoundsPlan, PackedTablesGiveTheModelsLogDensity) {
  const double log2pi = std::log(2.0 * M_PI);
  for (const Mixture& m : {two_point(3, 2.0, 0.5), diag3()}) {
    const gpu::PackedMixtureTables t = gpu::pack_mixture_tables(m);
    ASSERT_EQ(t.values.size(), t.logc + m.K);
    EXPECT_EQ(t.values[t.cum + m.K - 1], 1.0);
    const double* v = t.values.data();
    for (uint64_t i = 0; i < 5; ++i) {
      std::vector<double> x(m.d);
      const double lp = gpu::path_outer_draw(9, i, t.K, t.d, t.diagonal, v + t.cum, v + t.means, v + t.sd,
                                             v + t.inv_var, v + t.logc, x.data());
      EXPECT_NEAR(lp - 0.5 * m.d * log2pi, log_density(m, x.data()), 1e-12) << "draw " << i << " d=" << m.d;
    }
  }
}

// ======================= with a device =======================

TEST(CudaBounds, EveryKernelOnceSmall) {
  // Every bounds kernel at least once on a few rows (scripts/device.sh runs this one under
  // compute-sanitizer): the path bound with isotropic (unequal variances, a bias direction) and
  // diagonal components, the flow with both and, with a scale error past 1, the fallback kernel
  // (the Jacobi route for d <= K, the dense route for diagonal components) and the fold flag.
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_bounds_kernels("cpu", 0);
  auto gpu_kr = make_bounds_kernels("cuda");
  const Mixture m3 = isotropic(3, {{1.0, 0.0, -0.5}, {-0.8, 0.6, 0.1}, {0.0, -1.2, 0.9}}, {0.7, 1.1, 0.5}, {0.2, 0.3, 0.5});
  const Schedule s = schedule("linear", 6);
  for (const Mixture& m : {m3, diag3()}) {
    SampleOptions o;
    o.score_error = {ScoreErrorKind::Bias, 0.3};
    o.seed = 2;
    const std::vector<int> prefixes = {1, 4};
    expect_sums_close(path_sums(m, s, o, 5, 4, prefixes, *cpu), path_sums(m, s, o, 5, 4, prefixes, *gpu_kr),
                      kLogWeightTol, describe(o, "linear T=6", m));
    o.sampler = SamplerKind::DDIM;
    int fc = -1, fg = -1;
    expect_sums_close(flow_sums(m, s, o, 33, *cpu, &fc), flow_sums(m, s, o, 33, *gpu_kr, &fg), kLogRatioTol,
                      describe(o, "linear T=6", m));
    EXPECT_EQ(fc, 0);
    EXPECT_EQ(fg, 0);
    o.score_error = {ScoreErrorKind::Scale, 6.0};
    flow_sums(m, s, o, 33, *cpu, &fc);
    flow_sums(m, s, o, 33, *gpu_kr, &fg);
    EXPECT_EQ(fg, fc) << describe(o, "linear T=6", m);
    EXPECT_GT(fg, 0) << describe(o, "linear T=6", m);
  }
}

TEST(CudaBounds, PathLogWeightsMatchCpu) {
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_bounds_kernels("cpu", 0);
  auto gpu_kr = make_bounds_kernels("cuda");
  ASSERT_EQ(gpu_kr->name(), "cuda");
  double worst = 0;
  for (const PathCase& c : path_cases()) {
    const Schedule s = schedule(c.sched, c.T);
    const SampleOptions o = path_options(c);
    const std::vector<int> prefixes = {1, 4, 16};
    const std::vector<double> want = path_sums(c.m, s, o, 37, 16, prefixes, *cpu);
    const std::vector<double> got = path_sums(c.m, s, o, 37, 16, prefixes, *gpu_kr);
    worst = std::max(worst, expect_sums_close(want, got, kLogWeightTol, describe(o, c.sched, c.m)));
  }
  std::cout << "[ measured ] largest |log R_m (cpu) - log R_m (cuda)| = " << worst << "\n";
}

TEST(CudaBounds, FlowLogRatiosMatchCpu) {
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_bounds_kernels("cpu", 0);
  auto gpu_kr = make_bounds_kernels("cuda");
  double worst = 0;
  for (const FlowCase& c : flow_cases()) {
    const Schedule s = schedule(c.sched, c.T);
    const SampleOptions o = flow_options(c);
    int fold_cpu = -1, fold_gpu = -1;
    const std::vector<double> want = flow_sums(c.m, s, o, 1000, *cpu, &fold_cpu);
    const std::vector<double> got = flow_sums(c.m, s, o, 1000, *gpu_kr, &fold_gpu);
    EXPECT_EQ(fold_gpu, fold_cpu) << describe(o, c.sched, c.m);
    worst = std::max(worst, expect_sums_close(want, got, kLogRatioTol, describe(o, c.sched, c.m)));
  }
  std::cout << "[ measured ] largest |log p/q (cpu) - log p/q (cuda)| = " << worst << "\n";
}

TEST(CudaBounds, FallbacksAndFoldsMatchCpu) {
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_bounds_kernels("cpu", 0);
  auto gpu_kr = make_bounds_kernels("cuda");
  struct C {
    Mixture m;
    double eps;
    int T;
  };
  const std::vector<C> cases = {
      {isotropic(2, {{1.0, 0.0}, {-1.0, 0.5}, {0.0, -1.0}}, {0.3, 0.35, 0.3}, {0.3, 0.3, 0.4}), 6.0, 6},
      {isotropic(4, {{1.0, 0.0, 0.0, 0.0}, {-1.0, 0.5, 0.0, 0.0}}, {0.3, 0.3}, {0.5, 0.5}), 6.0, 6},
      {diag3(), 8.0, 5}};
  for (const C& c : cases) {
    SampleOptions o;
    o.sampler = SamplerKind::DDIM;
    o.score_error = {ScoreErrorKind::Scale, c.eps};
    o.seed = 3;
    o.stop = 0;
    const Schedule s = schedule("linear", c.T);
    int fold_cpu = -1, fold_gpu = -1;
    const std::vector<double> want = flow_sums(c.m, s, o, 2000, *cpu, &fold_cpu);
    const std::vector<double> got = flow_sums(c.m, s, o, 2000, *gpu_kr, &fold_gpu);
    const std::string what = describe(o, "linear T=" + std::to_string(c.T), c.m);
    EXPECT_EQ(fold_gpu, fold_cpu) << what;
    if (fold_cpu == 0) expect_sums_close(want, got, kLogRatioTol, what);
  }
}

TEST(CudaBounds, BracketFiguresMatchCpuK1AndTwoPoint) {
  // The figures `gmmdiff bracket` prints: K = 1 (whose TV has a closed form: the ddim exact TV's
  // CI holds it and the ddpm upper bound is above it) and the two-point model, on both kernels.
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_bounds_kernels("cpu", 0);
  auto gpu_kr = make_bounds_kernels("cuda");
  const Mixture k1 = isotropic(4, {{2.0, 0.0, 0.0, 0.0}}, {0.5}, {1.0});
  const Mixture tp = two_point(16, 2.0, 0.5);
  const Schedule s = schedule("lcw", 64);
  for (const Mixture& m : {k1, tp}) {
    SampleOptions o;
    o.seed = 1;
    BoundsOptions bo;
    bo.n = 512;
    bo.M = 16;
    const PathBound pc = path_bound(m, s, o, bo, *cpu), pg = path_bound(m, s, o, bo, *gpu_kr);
    const std::string what = "K=" + std::to_string(m.K) + " d=" + std::to_string(m.d) + " ddpm";
    expect_meanse_close(pc.tv, pg.tv, what + " U_TV(M)");
    expect_meanse_close(pc.tv_quarter, pg.tv_quarter, what + " U_TV(M/4)");
    expect_meanse_close(pc.kl, pg.kl, what + " U_KL(M)");
    EXPECT_NEAR(pc.tv_upper(), pg.tv_upper(), kFigureTol) << what;
    o.sampler = SamplerKind::DDIM;
    bo = BoundsOptions();
    bo.n = 4096;
    const ExactDensity ec = exact_density(m, s, o, bo, *cpu), eg = exact_density(m, s, o, bo, *gpu_kr);
    expect_meanse_close(ec.tv, eg.tv, "ddim exact TV");
    expect_meanse_close(ec.kl, eg.kl, "ddim exact KL");
    if (m.K == 1) {
      // The reference (here the closed form through the grid: the model is reducible).
      const Reference ref = exact_reference(m, s, o);
      EXPECT_LE(std::abs(eg.tv.mean - ref.tv), kSigmas * eg.tv.se + 1e-6) << "ddim exact TV " << eg.tv.mean
                                                                           << " +- " << eg.tv.se << " vs " << ref.tv;
      SampleOptions op;
      op.seed = 1;
      const Reference refp = exact_reference(m, s, op);
      EXPECT_GE(pg.tv_upper() + kSigmas * pg.tv.se, refp.tv) << "ddpm upper bound below the reference";
    }
  }
}

TEST(CudaBounds, ChunkSizesGiveTheSameFigures) {
  GMMDIFF_REQUIRE_GPU();
  auto gpu_kr = make_bounds_kernels("cuda");
  const Mixture m = two_point(8, 2.0, 0.5);
  const Schedule s = schedule("lcw", 32);
  SampleOptions o;
  o.seed = 9;
  BoundsOptions bo;
  bo.n = 300;
  bo.M = 8;
  std::vector<PathBound> r;
  for (uint64_t chunk : {uint64_t(0), uint64_t(1), uint64_t(97)}) {
    bo.chunk = chunk;
    r.push_back(path_bound(m, s, o, bo, *gpu_kr));
  }
  for (std::size_t i = 1; i < r.size(); ++i) {
    expect_meanse_close(r[0].tv, r[i].tv, "U_TV, chunking " + std::to_string(i));
    expect_meanse_close(r[0].kl, r[i].kl, "U_KL, chunking " + std::to_string(i));
  }
  o.sampler = SamplerKind::DDIM;
  bo = BoundsOptions();
  bo.n = 1000;
  std::vector<ExactDensity> e;
  for (uint64_t chunk : {uint64_t(0), uint64_t(3), uint64_t(333)}) {
    bo.chunk = chunk;
    e.push_back(exact_density(m, s, o, bo, *gpu_kr));
  }
  for (std::size_t i = 1; i < e.size(); ++i) expect_meanse_close(e[0].tv, e[i].tv, "exact TV, chunking " + std::to_string(i));
}

TEST(CudaBounds, OutOfMemoryIsExit3InOneLine) {
  // A chunk the device cannot hold (here: an allocation limit of 1 MiB, device_memory.hpp's fault
  // injection, in the child's environment): `bracket --backend cuda` says so in one line, exit 3,
  // and writes no file.
  GMMDIFF_REQUIRE_GPU();
  const std::string json = ::testing::TempDir() + "bracket_oom_" + std::to_string(::getpid()) + ".json";
  setenv("GMMDIFF_CUDA_ALLOC_LIMIT", "1M", 1);
  const test::CliResult r = test::run_cli(
      "bracket --preset two-point --d 64 --radius 2 --sd 0.5 --T 8 --n 4096 --M 64 --chunk 4096 --n-lower 1000 "
      "--backend cuda --json " + json);
  unsetenv("GMMDIFF_CUDA_ALLOC_LIMIT");
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(test::exists(json));
}

TEST(CudaBounds, BracketCliMatchesCpu) {
  // `gmmdiff bracket --backend cuda` against `--backend cpu`: the upper side (ddpm) and the exact
  // figures (ddim) agree to rounding; the JSON says where the bounds ran.
  GMMDIFF_REQUIRE_GPU();
  for (const std::string sampler : {"ddpm", "ddim"}) {
    nlohmann::json j[2];
    const char* backends[2] = {"cpu", "cuda"};
    for (int b = 0; b < 2; ++b) {
      const std::string path = ::testing::TempDir() + "bracket_" + sampler + "_" + backends[b] + "_" +
                               std::to_string(::getpid()) + ".json";
      const std::string cmd = "bracket --preset two-point --d 16 --radius 2 --sd 0.5 --T 64 --sampler " + sampler +
                              " --n " + (sampler == "ddpm" ? "512 --M 16" : "4096") +
                              " --n-lower 4000 --precision fp64 --no-reference --backend " + backends[b] +
                              " --json " + path;
      const test::CliResult r = test::run_cli(cmd);
      ASSERT_EQ(r.code, 0) << cmd << "\n" << r.out << r.err;
      std::ifstream in(path);
      in >> j[b];
      std::remove(path.c_str());
      EXPECT_EQ(j[b]["parameters"]["bounds_backend"], backends[b]);
    }
    for (const char* key : {"tv_upper", "tv_upper_mean", "tv_upper_quarter_M", "kl_upper", "tv_exact", "kl_exact"}) {
      if (j[0][key].is_null()) {
        EXPECT_TRUE(j[1][key].is_null()) << sampler << " " << key;
        continue;
      }
      EXPECT_NEAR(j[0][key].get<double>(), j[1][key].get<double>(), kFigureTol) << sampler << " " << key;
    }
  }
}

TEST(CudaBounds, BenchHasBoundsRowsOnTheDevice) {
  GMMDIFF_REQUIRE_GPU();
  BenchOptions opt;
  opt.backend = "cuda";
  opt.n = {4096};
  opt.d = {16};
  opt.K = {4};
  opt.T = 8;
  opt.repeats = 1;
  opt.warmup = 0;
  opt.bounds_outer = 64;
  opt.bounds_M = 8;
  const BenchReport rep = run_bench(opt);
  ASSERT_EQ(rep.bounds.size(), 2u);
  for (const BoundsBenchResult& r : rep.bounds) {
    EXPECT_TRUE(r.ok) << r.kind << ": " << r.failure;
    EXPECT_GT(r.rate, 0) << r.kind;
  }
  EXPECT_EQ(rep.bounds_backend, "cuda");
}

}  // namespace
