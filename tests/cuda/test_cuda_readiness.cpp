// gmmdiff: device checks of what issue 14 changed in the CUDA backend (they skip without a device;
// their host halves are CudaPlan, CudaWeightsEmulation and CudaRt):
//  - the products path's weights kernel (a group of lanes per row) against the CPU for K past a
//    warp and with idle lanes;
//  - the staged transfers: uploads and stream_chunk across several pinned pieces;
//  - a product whose operands pass 2^31 elements, split into row blocks, against the CPU on the
//    rows around the split (skips on a device with less than kSplitTestFreeBytes free);
//  - BF16x9: refused before compute capability 10.0, never reported as a path that did not run;
//  - a fused run allocates no products buffers (its chunk is larger than the products path's).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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
#include "util/sink_util.hpp"

namespace {

using namespace gmmdiff;
using namespace gmmdiff::test;

constexpr double kFp32Tol = 1e-4;  // as test_cuda_backend.cpp's, relative to the data's scale
constexpr double kFp64Tol = 1e-10;
double tol_for(Precision p) { return p == Precision::FP32 ? kFp32Tol : kFp64Tol; }

// The split test holds 33.6 M rows of d = K = 64 floats on the products path (772 bytes a row).
constexpr std::size_t kSplitTestFreeBytes = std::size_t{40} << 30;

Mixture model_for(const std::string& family, int d, int K) {
  PresetParams p;
  p.name = "random-sphere";
  p.d = d;
  p.K = K;
  p.radius = 2.5;
  p.seed = 13;
  double sum = 0;
  for (int k = 0; k < K; ++k) sum += 1.0 + k % 5;
  for (int k = 0; k < K; ++k) p.weights.push_back((1.0 + k % 5) / sum);
  if (family == "iso-varying") {
    p.sd.clear();
    for (int k = 0; k < K; ++k) p.sd.push_back(0.5 + 0.25 * (k % 4));
    return make_preset(p);
  }
  p.sd = {1.0};
  Mixture m = make_preset(p);
  if (family == "diagonal") {
    m.cov = Covariance::Diagonal;
    m.var_diag.resize(static_cast<std::size_t>(K) * d);
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) m.var_diag[static_cast<std::size_t>(k) * d + j] = 0.4 + 0.2 * ((k + j) % 5);
    validate(m);
  }
  return m;
}

Schedule schedule_T(int T) {
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = T;
  return make_schedule(sp);
}

int device_cc_major() {
  const auto devs = cuda_devices();
  return devs.empty() ? 0 : devs[0].cc_major;
}

TEST(CudaProductsWeights, LargeKMatchesCpu) {
  GMMDIFF_REQUIRE_GPU();
  for (const std::string family : {"iso-uniform", "iso-varying", "diagonal"})
    for (int K : {5, 33, 70, 1000})
      for (Precision p : {Precision::FP32, Precision::FP64}) {
        const int d = 12;
        std::ostringstream tr;
        tr << "model " << family << " d " << d << " K " << K << " precision " << to_string(p) << " path products";
        SCOPED_TRACE(tr.str());
        const Mixture m = model_for(family, d, K);
        SampleOptions o;
        o.n = 700;
        o.chunk = 256;
        o.seed = 5;
        o.precision = p;
        o.eps_samples = 16;
        auto cpu = make_backend("cpu", 2);
        auto gpu = make_backend("cuda");
        gpu->set_step_path("products");
        PlacedSink a(o.n, d, p), b(o.n, d, p);
        run_sampler(m, schedule_T(15), o, *cpu, a);
        const RunSummary sum = run_sampler(m, schedule_T(15), o, *gpu, b);
        EXPECT_EQ(sum.path, "cuda-gemm");
        expect_rows_close(a.y, b.y, d, tol_for(p));
      }
}

TEST(CudaStaging, UploadAndStreamAcrossPieces) {
  GMMDIFF_REQUIRE_GPU();
  // d = 64 doubles: 512 bytes a row, 65536 rows a 32 MiB piece; 150000 rows are 3 pieces.
  const int d = 64;
  const std::size_t rows = 150000;
  const Mixture m = model_for("iso-uniform", d, 3);
  std::vector<double> host(rows * d);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = std::sin(0.001 * static_cast<double>(i)) * 4.0 + 1e-3 * (i % 7);
  auto gpu = make_backend("cuda");
  for (Precision p : {Precision::FP32, Precision::FP64}) {
    SCOPED_TRACE(std::string("precision ") + to_string(p));
    const std::size_t vb = p == Precision::FP32 ? 4 : 8;
    gpu->begin(run_shape(m, p, 1, rows), m);
    gpu->upload_chunk(host.data(), 7, rows);
    std::vector<unsigned char> scratch, streamed;
    std::size_t next = 0, pieces = 0;
    gpu->stream_chunk(d * vb, scratch, [&](const void* v, std::size_t r0, std::size_t n) {
      EXPECT_EQ(r0, next);
      next = r0 + n;
      ++pieces;
      const auto* b = static_cast<const unsigned char*>(v);
      streamed.insert(streamed.end(), b, b + n * d * vb);
    });
    EXPECT_EQ(next, rows);
    EXPECT_GE(pieces, p == Precision::FP32 ? 2u : 3u);
    EXPECT_TRUE(scratch.empty()) << "the CUDA backend streams through its own pinned buffers";
    std::vector<unsigned char> whole(rows * d * vb);
    gpu->download(whole.data());
    ASSERT_EQ(streamed.size(), whole.size());
    EXPECT_EQ(std::memcmp(streamed.data(), whole.data(), whole.size()), 0) << "stream_chunk differs from download";
    for (std::size_t i = 0; i < host.size(); i += 997) {
      double got;
      if (p == Precision::FP32) {
        float f;
        std::memcpy(&f, whole.data() + i * 4, 4);
        got = f;
        ASSERT_EQ(got, static_cast<double>(static_cast<float>(host[i]))) << "value " << i;
      } else {
        std::memcpy(&got, whole.data() + i * 8, 8);
        ASSERT_EQ(got, host[i]) << "value " << i;
      }
    }
  }
}

/// Keeps the rows [lo, lo + count) of a run's single chunk, read through stream_chunk.
class WindowSink : public ChunkSink {
 public:
  WindowSink(std::size_t lo, std::size_t count, int d) : lo_(lo), count_(count), d_(d), y(count * d) {}
  void on_chunk(Backend& be) override {
    std::vector<unsigned char> scratch;
    be.stream_chunk(static_cast<std::size_t>(d_) * sizeof(float), scratch,
                    [&](const void* v, std::size_t r0, std::size_t n) {
                      const float* f = static_cast<const float*>(v);
                      for (std::size_t r = 0; r < n; ++r) {
                        const std::size_t i = be.first() + r0 + r;
                        if (i < lo_ || i >= lo_ + count_) continue;
                        for (int j = 0; j < d_; ++j) y[(i - lo_) * d_ + j] = f[r * d_ + j];
                      }
                    });
  }
  std::size_t lo_, count_;
  int d_;
  std::vector<double> y;
};

TEST(CudaProductsSplit, OperandsPastTwoToThe31ElementsMatchCpu) {
  GMMDIFF_REQUIRE_GPU();
  const auto devs = cuda_devices();
  if (devs[0].free_bytes < kSplitTestFreeBytes) GTEST_SKIP() << "needs " << (kSplitTestFreeBytes >> 30) << " GiB free";
  // d = K = 64: a call holds at most 33554431 rows (2^31 - 1 elements); 33555456 rows make two
  // calls per product, the second starting at row 33554431.
  const int d = 64, K = 64;
  const std::size_t boundary = 33554431, n = 33555456, lo = boundary - 256, count = 512;
  const Mixture m = model_for("iso-varying", d, K);
  const Schedule sched = schedule_T(4);
  SampleOptions o;
  o.n = n;
  o.seed = 77;
  o.eps_samples = 4;
  auto gpu = make_backend("cuda");
  gpu->set_step_path("products");
  WindowSink win(lo, count, d);
  const RunSummary sum = run_sampler(m, sched, o, *gpu, win);
  ASSERT_EQ(sum.chunks, 1u) << "the run must hold all rows in one chunk to test the split";
  EXPECT_EQ(sum.path, "cuda-gemm");
  // The CPU on the same particles (their randomness is a function of their index alone).
  auto cpu = make_backend("cpu", 0);
  cpu->set_step_path("products");
  cpu->begin(run_shape(m, Precision::FP32, o.seed, count), m);
  cpu->init_chunk(lo, count);
  const Mixture sm = score_model(m, o.score_error, o.seed);
  for (int t = sched.T; t > o.stop; --t) cpu->step(step_coeffs(sm, sched, t, o, {}));
  expect_rows_close(download_double(*cpu, d, Precision::FP32), win.y, d, kFp32Tol);
}

TEST(CudaTensorCoreModes, Bf16x9OnlyWhereTheDeviceRunsIt) {
  GMMDIFF_REQUIRE_GPU();
  auto gpu = make_backend("cuda");
  if (device_cc_major() < 10) {
    try {
      gpu->set_step_path("products-bf16x9");
      FAIL() << "products-bf16x9 accepted on a device of compute capability " << device_cc_major();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("10.0"), std::string::npos) << e.what();
    }
    EXPECT_EQ(gpu->step_path(), "cuda") << "a refused request changed the path reported";
    return;
  }
  const Mixture m = model_for("iso-varying", 32, 64);
  gpu->set_step_path("products-bf16x9");
  SampleOptions o;
  o.n = 500;
  o.eps_samples = 4;
  PlacedSink out(o.n, m.d, o.precision);
  const RunSummary sum = run_sampler(m, schedule_T(8), o, *gpu, out);
  EXPECT_EQ(sum.path, "cuda-gemm-bf16x9");
}

TEST(CudaMemory, FusedRunsHoldOnlyTheirOwnBuffers) {
  GMMDIFF_REQUIRE_GPU();
  // The fused path's chunk costs d values a row, the products path's 2d + K + 1: at d = K = 64
  // the fused path's max_chunk_rows is about 3 times the products path's.
  const Mixture m = model_for("iso-uniform", 64, 64);
  auto gpu = make_backend("cuda");
  const RunShape s = run_shape(m, Precision::FP32, 1);
  gpu->set_step_path("products");
  const double products = static_cast<double>(gpu->max_chunk_rows(s));
  gpu->set_step_path("fused");
  const double fused = static_cast<double>(gpu->max_chunk_rows(s));
  EXPECT_GT(fused, 2.5 * products) << "fused " << fused << " rows, products " << products;
  RecordProperty("max_chunk_rows_products_d64_K64", std::to_string(products));
  RecordProperty("max_chunk_rows_fused_d64_K64", std::to_string(fused));
}

}  // namespace
