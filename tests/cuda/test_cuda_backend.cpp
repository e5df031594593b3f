// gmmdiff: the CUDA backend against its oracle, the CPU backend (same seeds, same particles up to
// rounding). Every test that needs a device skips cleanly without one; one test checks the
// error a machine without a device gives.
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

#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/types.hpp"
#include "util/backend_util.hpp"

namespace {

using namespace gmmdiff;
using namespace gmmdiff::test;

// Tolerances, relative to the scale of the compared data (max(1, max |cpu value|)).
// The Box-Muller normals go through device logf/sinf/cosf (within 2 ulp of glibc), the products
// through cuBLAS instead of OpenBLAS: the differences are rounding, amplified over the steps.
constexpr double kFp32Tol = 1e-4;
constexpr double kFp64Tol = 1e-10;
// Measured on the CPU: fp32 and fp64 runs of the cases below differ by at most 1e-5 x scale, so
// two fp32 runs that round differently stay well inside kFp32Tol.

// Histograms: values computed in double by both backends differ only by FMA contraction and
// summation order, so a row may land in a neighbouring bin only when it lies on an edge.
constexpr double kMaxEdgeRowFraction = 1e-3;

double tol_for(Precision p) { return p == Precision::FP32 ? kFp32Tol : kFp64Tol; }

// ---- models ----

constexpr int kD = 7;  // not a multiple of 4: exercises the last, partial Philox block
constexpr int kK = 5;

Mixture model_named(const std::string& name) {
  PresetParams p;
  p.name = "random-sphere";
  p.d = kD;
  p.K = kK;
  p.radius = 2.0;
  p.seed = 7;
  p.weights = {0.1, 0.3, 0.2, 0.25, 0.15};
  if (name == "iso-uniform") {
    p.sd = {1.0};
    return make_preset(p);
  }
  if (name == "iso-varying") {
    p.sd = {0.5, 0.8, 1.0, 1.3, 2.0};
    return make_preset(p);
  }
  // diagonal: the same means with per-coordinate variances.
  p.sd = {1.0};
  Mixture m = make_preset(p);
  m.cov = Covariance::Diagonal;
  m.var_diag.resize(static_cast<std::size_t>(kK) * kD);
  for (int k = 0; k < kK; ++k)
    for (int j = 0; j < kD; ++j) m.var_diag[static_cast<std::size_t>(k) * kD + j] = 0.3 + 0.25 * ((k + 2 * j) % 6);
  validate(m);
  return m;
}

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"iso-uniform", "iso-varying", "diagonal"};
  return names;
}

// ---- device-free check ----

TEST(CudaBackendNoDevice, MakeBackendThrowsNamingCuda) {
  if (cuda_compiled() && !cuda_devices().empty()) GTEST_SKIP() << "a CUDA device is present";
  try {
    auto be = make_backend("cuda");
    FAIL() << "make_backend(\"cuda\") returned a backend without a device";
  } catch (const Error& e) {
    std::string msg = e.what();
    std::transform(msg.begin(), msg.end(), msg.begin(), [](unsigned char c) { return std::tolower(c); });
    EXPECT_NE(msg.find("cuda"), std::string::npos) << e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line expected: " << e.what();
  }
}

TEST(CudaBackendNoDevice, AutoFallsBackToCpu) {
  if (cuda_compiled() && !cuda_devices().empty()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(make_backend("auto")->name(), "cpu");
}

// ---- basics ----

TEST(CudaBackend, NameDeviceAndChunkRows) {
  GMMDIFF_REQUIRE_GPU();
  auto be = make_backend("cuda");
  EXPECT_EQ(be->name(), "cuda");
  EXPECT_FALSE(be->device_name().empty());
  for (const std::string& name : model_names()) {
    for (Precision p : {Precision::FP32, Precision::FP64}) {
      SCOPED_TRACE("model " + name + ", precision " + to_string(p));
      const Mixture m = model_named(name);
      const std::size_t rows = be->max_chunk_rows(run_shape(m, p, 0, 0));
      EXPECT_GT(rows, 0u);
      EXPECT_EQ(rows % kChunkAlign, 0u);
    }
  }
}

// ---- filling a chunk ----

TEST(CudaBackend, InitChunkMatchesCpu) {
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_backend("cpu", 2);
  auto gpu = make_backend("cuda");
  const Mixture m = model_named("iso-varying");
  for (Precision p : {Precision::FP32, Precision::FP64}) {
    for (uint64_t first : {uint64_t{0}, uint64_t{1000}, (uint64_t{1} << 33) + 5}) {
      const uint64_t seed = 42;
      const std::size_t rows = 300;
      std::ostringstream tr;
      tr << "init_chunk precision " << to_string(p) << " seed " << seed << " first " << first << " rows " << rows
         << " d " << m.d;
      SCOPED_TRACE(tr.str());
      const RunShape s = run_shape(m, p, seed, 512);
      cpu->begin(s, m);
      gpu->begin(s, m);
      cpu->init_chunk(first, rows);
      gpu->init_chunk(first, rows);
      EXPECT_EQ(gpu->rows(), rows);
      EXPECT_EQ(gpu->first(), first);
      expect_rows_close(download_double(*cpu, m.d, p), download_double(*gpu, m.d, p), m.d, tol_for(p));
    }
  }
}

TEST(CudaBackend, FillTargetMatchesCpu) {
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_backend("cpu", 2);
  auto gpu = make_backend("cuda");
  for (const std::string& name : model_names()) {
    const Mixture m = model_named(name);
    for (Precision p : {Precision::FP32, Precision::FP64}) {
      const uint64_t seed = 9, first = 77;
      const std::size_t rows = 1000;
      std::ostringstream tr;
      tr << "fill_target model " << name << " precision " << to_string(p) << " seed " << seed << " first "
         << first << " rows " << rows << " d " << m.d << " K " << m.K;
      SCOPED_TRACE(tr.str());
      const RunShape s = run_shape(m, p, seed, rows);
      cpu->begin(s, m);
      gpu->begin(s, m);
      cpu->fill_target(first, rows);
      gpu->fill_target(first, rows);
      expect_rows_close(download_double(*cpu, m.d, p), download_double(*gpu, m.d, p), m.d, tol_for(p));
    }
  }
}

TEST(CudaBackend, UploadDownloadRoundTrip) {
  GMMDIFF_REQUIRE_GPU();
  auto gpu = make_backend("cuda");
  const Mixture m = model_named("iso-uniform");
  const std::size_t rows = 257;
  std::vector<double> host(rows * m.d);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = std::sin(0.37 * static_cast<double>(i)) * 3.0;
  for (Precision p : {Precision::FP32, Precision::FP64}) {
    SCOPED_TRACE(std::string("precision ") + to_string(p));
    gpu->begin(run_shape(m, p, 1, 512), m);
    gpu->upload_chunk(host.data(), 10, rows);
    EXPECT_EQ(gpu->first(), 10u);
    const std::vector<double> back = download_double(*gpu, m.d, p);
    ASSERT_EQ(back.size(), host.size());
    for (std::size_t i = 0; i < host.size(); ++i) {
      const double want = p == Precision::FP32 ? static_cast<double>(static_cast<float>(host[i])) : host[i];
      ASSERT_EQ(back[i], want) << "at " << i;
    }
  }
}

// ---- full runs ----

struct RunCase {
  std::string model;
  Precision precision;
  SamplerKind sampler;
  ScoreErrorKind error;
  std::size_t cuda_chunk;  // 0: all particles in one chunk
};

// Readable parameters in test listings (instead of GoogleTest's byte dump).
void PrintTo(const RunCase& c, std::ostream* os) {
  *os << c.model << "/" << to_string(c.precision) << "/" << to_string(c.sampler) << "/" << to_string(c.error)
      << "/chunk" << c.cuda_chunk;
}

std::string describe(const RunCase& c, const SampleOptions& o, const Schedule& s) {
  std::ostringstream os;
  os << "model " << c.model << " d " << kD << " K " << kK << " precision " << to_string(c.precision) << " sampler "
     << to_string(c.sampler) << " variance " << to_string(o.variance) << " score_error " << to_string(c.error)
     << " eps " << o.score_error.eps << " n " << o.n << " seed " << o.seed << " schedule " << s.name << " T " << s.T
     << " stop " << o.stop << " cuda chunk " << c.cuda_chunk << " (cpu: one chunk)";
  return os.str();
}

class CudaRun : public ::testing::TestWithParam<RunCase> {};

TEST_P(CudaRun, MatchesCpu) {
  GMMDIFF_REQUIRE_GPU();
  const RunCase& c = GetParam();
  const Mixture m = model_named(c.model);
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = 30;
  const Schedule sched = make_schedule(sp);
  SampleOptions o;
  o.n = 700;  // not a multiple of 256: the last chunk is partial
  o.sampler = c.sampler;
  o.seed = 2024;
  o.precision = c.precision;
  o.score_error.kind = c.error;
  o.score_error.eps = c.error == ScoreErrorKind::None ? 0.0 : 0.2;
  o.eps_samples = 16;
  SCOPED_TRACE(describe(c, o, sched));

  auto cpu = make_backend("cpu", 2);
  auto gpu = make_backend("cuda");
  gpu->set_step_path("products");  // the fused path has its own suite (test_cuda_fused.cpp)
  PlacedSink cpu_sink(o.n, m.d, c.precision), gpu_sink(o.n, m.d, c.precision);
  o.chunk = 0;
  run_sampler(m, sched, o, *cpu, cpu_sink);
  o.chunk = c.cuda_chunk;
  const RunSummary sum = run_sampler(m, sched, o, *gpu, gpu_sink);
  EXPECT_EQ(sum.path, "cuda-gemm");
  EXPECT_EQ(sum.chunks, c.cuda_chunk == 0 ? 1u : (o.n + c.cuda_chunk - 1) / c.cuda_chunk);
  EXPECT_EQ(gpu_sink.chunks, sum.chunks);
  expect_rows_close(cpu_sink.y, gpu_sink.y, m.d, tol_for(c.precision));
}

std::vector<RunCase> all_run_cases() {
  std::vector<RunCase> out;
  for (const std::string& model : model_names())
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

INSTANTIATE_TEST_SUITE_P(Cuda, CudaRun, ::testing::ValuesIn(all_run_cases()), run_case_name);

// ---- non-finite rows and histograms on uploaded data ----

/// Deterministic data of `rows` x kD around the mixture's scale, with NaN/Inf planted in some rows.
struct Planted {
  std::vector<double> y;
  uint64_t nonfinite_rows = 0;       // in double
  uint64_t nonfinite_rows_fp32 = 0;  // plus values that overflow float
};

Planted planted_data(std::size_t rows) {
  Planted out;
  out.y.resize(rows * kD);
  for (std::size_t i = 0; i < rows; ++i)
    for (int j = 0; j < kD; ++j)
      out.y[i * kD + j] = 2.5 * std::sin(0.731 * static_cast<double>(i) + 1.37 * j) +
                          0.8 * std::cos(0.113 * static_cast<double>(i * (j + 1)));
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  out.y[3 * kD + 2] = nan;
  out.y[3 * kD + 5] = inf;  // two bad values, one bad row
  out.y[50 * kD + 6] = inf;
  out.y[7 * kD + 0] = -inf;
  out.y[100 * kD + 1] = nan;
  out.y[(rows - 1) * kD + (kD - 1)] = nan;  // the very last value
  out.nonfinite_rows = 5;
  out.y[200 * kD + 4] = 1e39;  // finite in double, +Inf as float
  out.nonfinite_rows_fp32 = out.nonfinite_rows + 1;
  return out;
}

TEST(CudaBackend, CountNonfiniteRowsMatchesPlanted) {
  GMMDIFF_REQUIRE_GPU();
  auto cpu = make_backend("cpu", 2);
  auto gpu = make_backend("cuda");
  const Mixture m = model_named("iso-uniform");
  const std::size_t rows = 1000;
  const Planted data = planted_data(rows);
  for (Precision p : {Precision::FP32, Precision::FP64}) {
    SCOPED_TRACE(std::string("count_nonfinite_rows precision ") + to_string(p) + " rows " + std::to_string(rows));
    const uint64_t want = p == Precision::FP32 ? data.nonfinite_rows_fp32 : data.nonfinite_rows;
    cpu->begin(run_shape(m, p, 0, rows), m);
    gpu->begin(run_shape(m, p, 0, rows), m);
    cpu->upload_chunk(data.y.data(), 0, rows);
    gpu->upload_chunk(data.y.data(), 0, rows);
    EXPECT_EQ(gpu->count_nonfinite_rows(), want);
    EXPECT_EQ(cpu->count_nonfinite_rows(), want);
    // A sub-chunk: only its rows count.
    gpu->upload_chunk(data.y.data(), 0, 60);
    EXPECT_EQ(gpu->count_nonfinite_rows(), 3u);  // rows 3, 7, 50 (not 100, 200, 999)
  }
}

HistogramCounts zeros_for(const HistogramSpec& spec) {
  HistogramCounts c;
  for (const auto& e : spec.edges) c.one_d.emplace_back(e.size() - 1, 0);
  for (const auto& [a, b] : spec.pairs) c.two_d.emplace_back((spec.edges[a].size() - 1) * (spec.edges[b].size() - 1), 0);
  return c;
}

std::vector<double> uniform_edges(double lo, double hi, int bins, bool open_ends) {
  std::vector<double> e(bins + 1);
  for (int b = 0; b <= bins; ++b) e[b] = lo + (hi - lo) * b / bins;
  if (open_ends) {
    e.front() = -std::numeric_limits<double>::infinity();
    e.back() = std::numeric_limits<double>::infinity();
  }
  return e;
}

/// Values: projections on e_0, the normalised all-ones and a fixed mixed direction, then the
/// radial |y - center|^2; `bins` bins each; 2-D histograms on (0, 1) and (2, 3).
HistogramSpec make_spec(int bins) {
  HistogramSpec s;
  s.d = kD;
  s.directions.assign(3 * kD, 0.0);
  s.directions[0] = 1.0;
  for (int j = 0; j < kD; ++j) s.directions[kD + j] = 1.0 / std::sqrt(double(kD));
  auto mixed = [](int j) { return 0.3 + 0.1 * j * (j % 2 ? -1 : 1); };
  double norm = 0;
  for (int j = 0; j < kD; ++j) norm += mixed(j) * mixed(j);
  for (int j = 0; j < kD; ++j) s.directions[2 * kD + j] = mixed(j) / std::sqrt(norm);
  s.radial = true;
  s.center.assign(kD, 0.25);
  s.edges.push_back(uniform_edges(-4, 4, bins, true));
  s.edges.push_back(uniform_edges(-6, 6, bins, true));
  s.edges.push_back(uniform_edges(-5, 5, bins, false));  // finite ends: outside values clamp to end bins
  s.edges.push_back(uniform_edges(0, 60, bins, true));
  s.pairs = {{0, 1}, {2, 3}};
  return s;
}

void expect_counts_close(const HistogramCounts& cpu, const HistogramCounts& gpu, uint64_t rows) {
  EXPECT_EQ(gpu.rows, cpu.rows);
  EXPECT_EQ(gpu.nonfinite_rows, cpu.nonfinite_rows);
  const double allowed = 2.0 * std::ceil(kMaxEdgeRowFraction * static_cast<double>(rows));
  auto l1 = [](const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
    uint64_t s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    return s;
  };
  ASSERT_EQ(cpu.one_d.size(), gpu.one_d.size());
  ASSERT_EQ(cpu.two_d.size(), gpu.two_d.size());
  for (std::size_t v = 0; v < cpu.one_d.size(); ++v) {
    ASSERT_EQ(cpu.one_d[v].size(), gpu.one_d[v].size());
    uint64_t total = 0;
    for (uint64_t c : gpu.one_d[v]) total += c;
    EXPECT_EQ(total, gpu.rows - gpu.nonfinite_rows) << "value " << v;
    EXPECT_LE(static_cast<double>(l1(cpu.one_d[v], gpu.one_d[v])), allowed) << "1-D histogram of value " << v;
  }
  for (std::size_t p = 0; p < cpu.two_d.size(); ++p) {
    ASSERT_EQ(cpu.two_d[p].size(), gpu.two_d[p].size());
    uint64_t total = 0;
    for (uint64_t c : gpu.two_d[p]) total += c;
    EXPECT_EQ(total, gpu.rows - gpu.nonfinite_rows) << "pair " << p;
    EXPECT_LE(static_cast<double>(l1(cpu.two_d[p], gpu.two_d[p])), allowed) << "2-D histogram " << p;
  }
}

/// bins1d per 1-D value; the pairs' cells (bins1d^2) decide between the shared-memory path
/// (few cells) and the global-atomics path (more cells than 48 KiB of 32-bit counters).
void check_histograms(int bins1d) {
  auto cpu = make_backend("cpu", 2);
  auto gpu = make_backend("cuda");
  const Mixture m = model_named("iso-varying");
  const std::size_t rows = 5000;
  const Planted data = planted_data(rows);
  const HistogramSpec spec = make_spec(bins1d);
  for (Precision p : {Precision::FP32, Precision::FP64}) {
    std::ostringstream tr;
    tr << "histograms precision " << to_string(p) << " rows " << rows << " bins per value " << bins1d
       << " values " << spec.num_values() << " pairs " << spec.pairs.size();
    SCOPED_TRACE(tr.str());
    cpu->begin(run_shape(m, p, 0, rows), m);
    gpu->begin(run_shape(m, p, 0, rows), m);
    HistogramCounts c_cpu = zeros_for(spec), c_gpu = zeros_for(spec);
    // Two chunks of uploaded data (accumulating), then one of exact target samples.
    for (int pass = 0; pass < 2; ++pass) {
      cpu->upload_chunk(data.y.data(), 0, rows);
      gpu->upload_chunk(data.y.data(), 0, rows);
      cpu->accumulate_histograms(spec, c_cpu);
      gpu->accumulate_histograms(spec, c_gpu);
    }
    cpu->fill_target(0, rows);
    gpu->fill_target(0, rows);
    cpu->accumulate_histograms(spec, c_cpu);
    gpu->accumulate_histograms(spec, c_gpu);
    EXPECT_EQ(c_gpu.rows, 3 * rows);
    EXPECT_EQ(c_gpu.nonfinite_rows,
              2 * (p == Precision::FP32 ? data.nonfinite_rows_fp32 : data.nonfinite_rows));
    expect_counts_close(c_cpu, c_gpu, 3 * rows);
  }
}

TEST(CudaBackend, HistogramsMatchCpuSharedMemory) {
  GMMDIFF_REQUIRE_GPU();
  check_histograms(24);  // 4 x 24 + 2 x 576 cells: shared memory
}

TEST(CudaBackend, HistogramsMatchCpuGlobalAtomics) {
  GMMDIFF_REQUIRE_GPU();
  check_histograms(120);  // 2 x 14400 cells > 12288: global atomics
}

}  // namespace
