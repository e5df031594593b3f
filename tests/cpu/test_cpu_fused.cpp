// The CPU backend's fused step (host/cpu/cpu_fused.cpp) against its BLAS path (the oracle): every
// covariance kind, precision, sampler and score error, shapes that exercise the padding and the
// row-tile remainder; bitwise reproducibility across threads and chunk sizes; K = 1 against the
// closed-form moments; the path selection.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "cpu/cpu_noise.hpp"
#include "cpu/cpu_pool.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "util/sink_util.hpp"

using namespace gmmdiff;
using gmmdiff::test::CollectSink;

namespace {

// Fused and BLAS paths sum in other orders and the fused path's Box-Muller uses libmvec: after T
// steps the outputs agree to these (absolute; the outputs are O(1) to O(10)).
constexpr double kFusedVsBlasTolF32 = 2e-4;
constexpr double kFusedVsBlasTolF64 = 1e-11;
constexpr double kMomentSigmas = 5.0;  // empirical moments within 5 standard errors

enum class Cov { IsoUniform, IsoVarying, Diagonal };
const char* cov_name(Cov c) {
  return c == Cov::IsoUniform ? "iso-uniform-sd" : (c == Cov::IsoVarying ? "iso-varying-sd" : "diagonal");
}

Mixture make_model(Cov cov, int d, int K) {
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = d;
  pp.K = K;
  pp.seed = 5;
  pp.radius = 3.0;
  if (cov == Cov::IsoVarying) {
    pp.sd.clear();
    for (int k = 0; k < K; ++k) pp.sd.push_back(0.4 + 0.15 * (k % 5));
  } else {
    pp.sd = {0.8};
  }
  std::vector<double> w(K);
  double s = 0;
  for (int k = 0; k < K; ++k) s += (w[k] = 1.0 + 0.3 * (k % 3));
  for (double& x : w) x /= s;
  pp.weights = w;
  Mixture m = make_preset(pp);
  if (cov == Cov::Diagonal) {
    m.cov = Covariance::Diagonal;
    m.var_diag.clear();
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) m.var_diag.push_back(0.2 + 0.1 * ((3 * k + j) % 9));
    validate(m);
  }
  return m;
}

std::vector<double> run(const Mixture& m, const Schedule& s, const SampleOptions& o, const std::string& path,
                        int threads, std::string* taken = nullptr) {
  auto be = make_backend("cpu", threads);
  be->set_step_path(path);
  CollectSink sink(m.d, o.precision);
  const RunSummary sum = run_sampler(m, s, o, *be, sink);
  if (taken) *taken = sum.path;
  return sink.data;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double mx = 0;
  for (std::size_t i = 0; i < a.size(); ++i) mx = std::max(mx, std::abs(a[i] - b[i]));
  return mx;
}

}  // namespace

TEST(CpuFused, MatchesBlasPath) {
  ScheduleParams sp;
  sp.T = 20;
  const Schedule s = make_schedule(sp);
  struct Shape {
    int d, K;
    uint64_t n;
  };
  // d = 10: not a multiple of 4 (Philox blocks) or of the vector width; n = 301: a full block,
  // then 45 rows (11 row tiles and one row); d = 33, K = 20: padding of both; n = 3: tiles of one.
  const Shape shapes[] = {{10, 5, 301}, {33, 20, 300}, {1, 2, 3}};
  const ScoreErrorKind errs[] = {ScoreErrorKind::None,    ScoreErrorKind::Bias,  ScoreErrorKind::Scale,
                                 ScoreErrorKind::Weights, ScoreErrorKind::Means, ScoreErrorKind::Gaussian};
  for (const Shape& sh : shapes)
    for (Cov cov : {Cov::IsoUniform, Cov::IsoVarying, Cov::Diagonal}) {
      const Mixture m = make_model(cov, sh.d, sh.K);
      for (Precision prec : {Precision::FP32, Precision::FP64})
        for (SamplerKind smp : {SamplerKind::DDPM, SamplerKind::DDIM})
          for (ScoreErrorKind err : errs) {
            SampleOptions o;
            o.n = sh.n;
            o.seed = 7;
            o.precision = prec;
            o.sampler = smp;
            o.score_error = {err, err == ScoreErrorKind::None ? 0.0 : 0.2};
            o.eps_samples = 4;
            const std::string what = std::string("d=") + std::to_string(sh.d) + " K=" + std::to_string(sh.K) +
                                     " n=" + std::to_string(sh.n) + " " + cov_name(cov) + " " + to_string(prec) +
                                     " " + to_string(smp) + " err=" + to_string(err);
            SCOPED_TRACE(what);
            std::string p_blas, p_fused;
            const std::vector<double> blas = run(m, s, o, "products", 2, &p_blas);
            const std::vector<double> fused = run(m, s, o, "fused", 2, &p_fused);
            EXPECT_EQ(p_blas, "cpu-blas");
            // the row-parallel kernel where it applies (fp32, one sd, AVX-512, small d), else the tiles
            EXPECT_EQ(p_fused, (prec == Precision::FP32 && cov == Cov::IsoUniform && sh.d <= kRowsMaxD &&
                                cpu_noise::have_avx512())
                                   ? "cpu-fused-rows"
                                   : "cpu-fused");
            ASSERT_EQ(blas.size(), fused.size());
            const double tol = prec == Precision::FP32 ? kFusedVsBlasTolF32 : kFusedVsBlasTolF64;
            EXPECT_LE(max_abs_diff(blas, fused), tol);
          }
    }
}

TEST(CpuFused, BitwiseAcrossThreadsAndChunks) {
  ScheduleParams sp;
  sp.T = 15;
  const Schedule s = make_schedule(sp);
  for (Cov cov : {Cov::IsoVarying, Cov::Diagonal})
    for (Precision prec : {Precision::FP32, Precision::FP64}) {
      const Mixture m = make_model(cov, 37, 9);
      SampleOptions o;
      o.n = 1300;
      o.seed = 11;
      o.precision = prec;
      o.score_error = {ScoreErrorKind::Gaussian, 0.3};  // both noise streams
      o.eps_samples = 4;
      std::vector<double> ref;
      for (int threads : {1, 2})
        for (std::size_t chunk : {std::size_t(0), std::size_t(256), std::size_t(700)}) {
          SCOPED_TRACE(testing::Message() << cov_name(cov) << " " << to_string(prec) << " threads=" << threads
                                          << " chunk=" << chunk);
          o.chunk = chunk;
          const std::vector<double> y = run(m, s, o, "fused", threads);
          if (ref.empty()) ref = y;
          else ASSERT_TRUE(ref == y);
        }
    }
}

TEST(CpuFused, GaussianTargetMatchesClosedForm) {
  // K = 1, N(mu, s^2 I): Y_1 is Gaussian with the moments of THEORY.md's recursion.
  PresetParams pp;
  pp.name = "gaussian";
  pp.d = 3;
  pp.radius = 1.5;
  pp.sd = {0.7};
  const Mixture m = make_preset(pp);
  ScheduleParams sp;
  sp.T = 40;
  const Schedule s = make_schedule(sp);
  for (SamplerKind smp : {SamplerKind::DDPM, SamplerKind::DDIM}) {
    SCOPED_TRACE(to_string(smp));
    SampleOptions o;
    o.n = 20000;
    o.seed = 3;
    o.sampler = smp;
    const std::vector<double> y = run(m, s, o, "fused", 2);
    for (int j = 0; j < m.d; ++j) {
      double mean = 0, var = 1;
      const double mu = m.mean(0)[j], s2 = m.sd[0] * m.sd[0];
      for (int t = s.T; t > o.stop; --t) {
        const StepCoeffs c = step_coeffs(m, s, t, o, {});
        const double v = s.abar[t] * s2 + s.one_minus_abar[t];
        const double ct = (1 - c.kappa / v) * c.inv_sqrt_alpha;
        mean = ct * mean + c.kappa * std::sqrt(s.abar[t]) * mu / v * c.inv_sqrt_alpha;
        var = ct * ct * var + c.sigma * c.sigma;
      }
      double em = 0, ev = 0;
      for (uint64_t i = 0; i < o.n; ++i) em += y[i * m.d + j];
      em /= o.n;
      for (uint64_t i = 0; i < o.n; ++i) ev += (y[i * m.d + j] - em) * (y[i * m.d + j] - em);
      ev /= (o.n - 1);
      EXPECT_NEAR(em, mean, kMomentSigmas * std::sqrt(var / o.n)) << "j=" << j;
      if (smp == SamplerKind::DDPM) EXPECT_NEAR(ev, var, kMomentSigmas * var * std::sqrt(2.0 / o.n)) << "j=" << j;
      else EXPECT_NEAR(ev, var, kMomentSigmas * var * std::sqrt(2.0 / o.n) + 1e-3) << "j=" << j;
    }
  }
}

TEST(CpuFused, PathSelection) {
  auto be = make_backend("cpu", 1);
  const Mixture small = make_model(Cov::IsoUniform, 8, 4);
  RunShape sh;
  sh.d = small.d;
  sh.K = small.K;
  sh.chunk_rows = 256;
  be->begin(sh, small);
  // auto, small K: before any step, the path it will take (small d, one sd, fp32: the rows kernel
  // on AVX-512)
  const std::string fused_small = cpu_noise::have_avx512() ? "cpu-fused-rows" : "cpu-fused";
  EXPECT_EQ(be->step_path(), fused_small);
  be->set_step_path("products");
  EXPECT_EQ(be->step_path(), "cpu-blas");
  be->set_step_path("fused");
  EXPECT_EQ(be->step_path(), fused_small);
  be->set_step_path("fused-tiles");
  EXPECT_EQ(be->step_path(), "cpu-fused");
  be->set_step_path("fused-rows");
  EXPECT_EQ(be->step_path(), fused_small);
  EXPECT_THROW(be->set_step_path("gemm"), Error);

  auto big = make_backend("cpu", 1);
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = 4096;
  pp.K = 128;  // P is 2 MiB in fp32
  const Mixture large = make_preset(pp);
  sh.d = large.d;
  sh.K = large.K;
  big->begin(sh, large);
  EXPECT_EQ(big->step_path(), "cpu-blas");  // auto: P of K x d does not fit the fused path's caches
}

// ---- the fused path's thread pool (host/cpu/cpu_pool.hpp) ----

TEST(CpuPool, EveryItemRunsOnceInEveryRun) {
  for (int threads : {1, 2, 3, 8}) {
    gmmdiff::CpuPool pool(threads);
    for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(2), std::size_t(7), std::size_t(1000)}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<int> bad_thread{0};
        pool.run(n, [&](std::size_t i, int thread) {
          hits[i].fetch_add(1);
          if (thread < 0 || thread >= threads) bad_thread.fetch_add(1);
        });
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[i].load(), 1) << "item " << i << " of " << n << ", " << threads << " threads, run " << rep;
        ASSERT_EQ(bad_thread.load(), 0) << threads << " threads";
      }
    }
  }
}

TEST(CpuPool, AnItemsExceptionReachesTheCallerAndThePoolGoesOn) {
  gmmdiff::CpuPool pool(3);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.run(100,
                        [&](std::size_t i, int) {
                          ran.fetch_add(1);
                          if (i == 37) throw std::runtime_error("item 37");
                        }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 100);  // the other items still ran
  std::atomic<int> after{0};
  pool.run(10, [&](std::size_t, int) { after.fetch_add(1); });
  EXPECT_EQ(after.load(), 10);
}

// Workers that went to sleep between runs (longer than CpuPool::kSpinMicros) wake for the next.
TEST(CpuPool, SleepingWorkersWakeForTheNextRun) {
  gmmdiff::CpuPool pool(4);
  for (int rep = 0; rep < 5; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::vector<std::atomic<int>> by_thread(4);
    pool.run(400, [&](std::size_t, int thread) {
      by_thread[static_cast<std::size_t>(thread)].fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    });
    int total = 0;
    for (auto& b : by_thread) total += b.load();
    EXPECT_EQ(total, 400);
    int workers_used = 0;
    for (int t = 1; t < 4; ++t) workers_used += by_thread[static_cast<std::size_t>(t)].load() > 0 ? 1 : 0;
    EXPECT_GE(workers_used, 1) << "run " << rep << ": no worker woke up in 80 ms of work";
  }
}

// The row-parallel kernel gives the register tiles' bits: every seed keeps its particles whichever
// kernel auto takes (fp32, one shared sd, AVX-512). Shapes around the lanes (16) and the padding.
TEST(CpuFusedRows, BitwiseEqualToTheTiles) {
  if (!cpu_noise::have_avx512()) GTEST_SKIP() << "the row-parallel kernel runs only with AVX-512";
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = 30;
  const Schedule s = make_schedule(sp);
  struct Shape {
    int d, K;
    uint64_t n;
  };
  const Shape shapes[] = {{1, 1, 17},  {1, 2, 300}, {2, 8, 513}, {3, 15, 40},  {4, 16, 33},  {5, 17, 300},
                          {7, 31, 16}, {8, 8, 260}, {9, 33, 70}, {12, 64, 300}, {13, 5, 31}, {20, 3, 100}};
  for (const Shape& sh : shapes)
    for (SamplerKind smp : {SamplerKind::DDPM, SamplerKind::DDIM})
      for (ScoreErrorKind err : {ScoreErrorKind::None, ScoreErrorKind::Gaussian, ScoreErrorKind::Bias,
                                 ScoreErrorKind::Scale, ScoreErrorKind::Means}) {
        const Mixture m = make_model(Cov::IsoUniform, sh.d, sh.K);
        SampleOptions o;
        o.n = sh.n;
        o.seed = 11;
        o.precision = Precision::FP32;
        o.sampler = smp;
        o.score_error = {err, err == ScoreErrorKind::None ? 0.0 : 0.25};
        o.eps_samples = 4;
        const std::string what = "d=" + std::to_string(sh.d) + " K=" + std::to_string(sh.K) +
                                 " n=" + std::to_string(sh.n) + " " + to_string(smp) + " err=" + to_string(err);
        SCOPED_TRACE(what);
        std::string p_rows, p_tiles;
        const std::vector<double> rows = run(m, s, o, "fused-rows", 2, &p_rows);
        const std::vector<double> tiles = run(m, s, o, "fused-tiles", 2, &p_tiles);
        EXPECT_EQ(p_rows, "cpu-fused-rows");
        EXPECT_EQ(p_tiles, "cpu-fused");
        ASSERT_EQ(rows.size(), tiles.size());
        std::size_t differ = 0;
        for (std::size_t i = 0; i < rows.size(); ++i) differ += std::memcmp(&rows[i], &tiles[i], sizeof(double)) != 0;
        EXPECT_EQ(differ, 0u) << "of " << rows.size() << " values, max |diff| " << max_abs_diff(rows, tiles);
      }
}

/// Y_T on the CPU is detail::philox_normal4 of stream kStreamInit, bit for bit: with AVX-512 its
/// Philox words come 16 at a time from cpu_noise and only the Box-Muller stays scalar. Chunks of
/// any size (part of a block, several blocks and a part), a first particle whose low word carries,
/// d = 1..4 and past a block of 4, both precisions, 1 and 2 threads.
template <typename Real>
void check_init_against_scalar(Precision prec) {
  struct Case {
    int d;
    std::size_t rows;
    uint64_t first;
  };
  const Case cases[] = {{1, 1, 0},    {2, 255, 3},   {3, 256, 0},  {4, 300, 4294967200ull}, {5, 777, 1ull << 40},
                        {8, 513, 17}, {17, 70, 256}, {64, 260, 0}, {33, 40, (1ull << 47) - 20}};
  const uint64_t seed = 0x1234567887654321ull;
  for (const Case& c : cases)
    for (int threads : {1, 2}) {
      SCOPED_TRACE("d=" + std::to_string(c.d) + " rows=" + std::to_string(c.rows) + " first=" +
                   std::to_string(c.first) + " threads=" + std::to_string(threads) + " " + to_string(prec));
      CpuBackend be(threads);
      const Mixture m = make_model(Cov::IsoUniform, c.d, 2);
      be.begin(run_shape(m, prec, seed, c.rows), m);
      be.init_chunk(c.first, c.rows);
      std::vector<Real> got(c.rows * c.d);
      be.download(got.data());
      std::size_t differ = 0;
      for (std::size_t i = 0; i < c.rows; ++i)
        for (int b = 0; 4 * b < c.d; ++b) {
          Real z[4];
          detail::philox_normal4<Real>(seed, kStreamInit, c.first + i, 0, static_cast<uint32_t>(b), z);
          for (int k = 0; k < 4 && 4 * b + k < c.d; ++k)
            differ += std::memcmp(&z[k], &got[i * c.d + 4 * b + k], sizeof(Real)) != 0;
        }
      EXPECT_EQ(differ, 0u) << "of " << got.size() << " values (AVX-512 path: " << cpu_noise::have_avx512() << ")";
    }
}

TEST(CpuInit, YTIsTheScalarPhiloxNormalsBitForBit) {
  check_init_against_scalar<float>(Precision::FP32);
  check_init_against_scalar<double>(Precision::FP64);
}

/// The CPU chunk is host memory already: stream_chunk hands it in one piece, the values download()
/// copies, without touching the scratch; a row size that is not the chunk's is refused.
TEST(CpuInit, StreamChunkHandsTheChunkItself) {
  for (Precision prec : {Precision::FP32, Precision::FP64}) {
    SCOPED_TRACE(to_string(prec));
    CpuBackend be(2);
    const Mixture m = make_model(Cov::IsoUniform, 5, 2);
    be.begin(run_shape(m, prec, 3, 300), m);
    be.init_chunk(7, 300);
    const std::size_t row_bytes = 5 * (prec == Precision::FP32 ? 4 : 8);
    std::vector<unsigned char> want(300 * row_bytes), scratch;
    be.download(want.data());
    int calls = 0;
    be.stream_chunk(row_bytes, scratch, [&](const void* values, std::size_t row0, std::size_t rows) {
      ++calls;
      EXPECT_EQ(row0, 0u);
      ASSERT_EQ(rows, 300u);
      EXPECT_EQ(std::memcmp(values, want.data(), want.size()), 0);
    });
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(scratch.empty()) << "no copy";
    EXPECT_THROW(be.stream_chunk(row_bytes + 1, scratch, [](const void*, std::size_t, std::size_t) {}), Error);
  }
}

/// count_nonfinite_rows counts rows holding a NaN or an infinity, once per row, over every block
/// and a partial one; the largest finite values, subnormals and -0 are finite.
TEST(CpuInit, CountsRowsWithNanOrInf) {
  for (Precision prec : {Precision::FP32, Precision::FP64}) {
    SCOPED_TRACE(to_string(prec));
    const int d = 3;
    const std::size_t rows = 700;  // two blocks of 256 and a part
    const Mixture m = make_model(Cov::IsoUniform, d, 2);
    std::vector<double> y(rows * d, 0.5);
    const double big = prec == Precision::FP32 ? double(std::numeric_limits<float>::max()) : 1.7e308;
    const double tiny = prec == Precision::FP32 ? double(std::numeric_limits<float>::denorm_min()) : 4.9e-324;
    y[0 * d + 0] = big;
    y[1 * d + 1] = -big;
    y[2 * d + 2] = tiny;
    y[3 * d + 0] = -0.0;
    y[10 * d + 1] = NAN;
    y[300 * d + 0] = INFINITY;
    y[300 * d + 2] = NAN;  // the same row again: counted once
    y[699 * d + 2] = -INFINITY;
    CpuBackend be(2);
    be.begin(run_shape(m, prec, 1, rows), m);
    be.upload_chunk(y.data(), 0, rows);
    EXPECT_EQ(be.count_nonfinite_rows(), 3u);
  }
}
