// gmmdiff: the CUDA backend's error paths (cuda/rt/device_memory.hpp), run without a device: a
// fake runtime stands in for cudaMalloc / cudaFree / cudaGetLastError and keeps the runtime's
// contract (a failed call leaves its error as the "last error" until cudaGetLastError takes it).
//  - an allocation failure is a ResourceError and leaves no stale last error behind, so the next
//    launch check (CUDA_CHECK_LAUNCH) passes: the bug where run_sampler's smaller-chunk retry and
//    bench's next configuration failed on the error of an allocation that had already been reported;
//  - run_sampler's retry and bench's next configuration then go on, with a backend that allocates
//    through DeviceBuffer and checks its "launches" as the CUDA backend does;
//  - the allocation limit (GMMDIFF_CUDA_ALLOC_LIMIT): its parsing and its refusals;
//  - a failed free is recorded and surfaces at the next synchronisation, never thrown by a
//    destructor.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_testing.hpp"
#include "cuda/rt/cuda_error.hpp"
#include "cuda/rt/device_buffer.hpp"
#include "cuda/rt/device_memory.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/bench.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "util/backend_util.hpp"
#include "util/sink_util.hpp"

namespace {

using namespace gmmdiff;
using gpu::DeviceBuffer;

/// A device of `capacity` bytes in host memory, with the runtime's last-error contract.
class FakeRuntime final : public gpu::DeviceRuntime {
 public:
  explicit FakeRuntime(std::size_t capacity) : capacity_(capacity) {}
  cudaError_t malloc_device(void** p, std::size_t bytes) override {
    ++mallocs;
    if (bytes > capacity_ - held_) return fail(cudaErrorMemoryAllocation);
    *p = std::malloc(bytes);
    if (*p == nullptr) return fail(cudaErrorMemoryAllocation);
    held_ += bytes;
    sizes_[*p] = bytes;
    return cudaSuccess;
  }
  cudaError_t free_device(void* p) override {
    const auto it = sizes_.find(p);
    if (it == sizes_.end()) return fail(cudaErrorInvalidValue);
    held_ -= it->second;
    sizes_.erase(it);
    std::free(p);
    if (fail_next_free) {
      fail_next_free = false;
      return fail(cudaErrorIllegalAddress);
    }
    return cudaSuccess;
  }
  cudaError_t malloc_host(void** p, std::size_t bytes) override {
    *p = std::malloc(bytes);
    return *p != nullptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
  }
  cudaError_t free_host(void* p) override {
    std::free(p);
    return cudaSuccess;
  }
  cudaError_t get_last_error() override {
    const cudaError_t e = last_;
    last_ = cudaSuccess;
    return e;
  }
  cudaError_t peek() const { return last_; }
  std::size_t held() const { return held_; }
  int mallocs = 0;
  bool fail_next_free = false;

 private:
  cudaError_t fail(cudaError_t e) {
    last_ = e;
    return e;
  }
  std::size_t capacity_, held_ = 0;
  cudaError_t last_ = cudaSuccess;
  std::map<void*, std::size_t> sizes_;
};

/// Installs a fake runtime (and optionally an allocation limit) for the scope of a test.
class WithFake {
 public:
  explicit WithFake(std::size_t capacity, std::size_t limit = gpu::kNoAllocLimit) : fake(capacity) {
    gpu::set_device_runtime(&fake);
    gpu::set_device_alloc_limit(limit);
  }
  ~WithFake() {
    gpu::set_device_alloc_limit(gpu::kNoAllocLimit);
    gpu::set_device_runtime(nullptr);
    try {
      gpu::check_deferred_errors();  // leave none to the next test
    } catch (const Error&) {
    }
  }
  FakeRuntime fake;
};

constexpr std::size_t kMiB = std::size_t{1} << 20;

TEST(CudaRt, AllocationFailureIsResourceErrorAndLeavesNoStaleError) {
  WithFake f(64 * kMiB);
  DeviceBuffer<float> ok(kMiB);  // 4 MiB: fits
  try {
    DeviceBuffer<float> big(32 * kMiB, "the test's buffer");  // 128 MiB: does not
    FAIL() << "an allocation past the fake device's capacity succeeded";
  } catch (const ResourceError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("the test's buffer"), std::string::npos) << msg;
    EXPECT_NE(msg.find("128 MiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--chunk"), std::string::npos) << msg;
  }
  // The runtime recorded the failure; the exception reported it; nothing is left for the next check.
  EXPECT_EQ(f.fake.peek(), cudaSuccess);
  EXPECT_NO_THROW(CUDA_CHECK_LAUNCH("the next kernel"));
  EXPECT_EQ(gpu::device_bytes_held(), 4 * kMiB);
}

TEST(CudaRt, LaunchCheckStillReportsAFreshError) {
  // The clearing must not hide an error nobody has reported: a failure recorded by the runtime
  // (here: a raw call that failed, as a kernel launch would) is thrown by the next launch check.
  WithFake f(kMiB);
  void* p = nullptr;
  EXPECT_EQ(gpu::device_runtime().malloc_device(&p, 2 * kMiB), cudaErrorMemoryAllocation);
  EXPECT_THROW(CUDA_CHECK_LAUNCH("a kernel"), ResourceError);
  EXPECT_NO_THROW(CUDA_CHECK_LAUNCH("the kernel after it"));
}

TEST(CudaRt, CheckedCallFailureIsClearedWhenThrown) {
  WithFake f(kMiB);
  void* p = nullptr;
  EXPECT_THROW(CUDA_CHECK(gpu::device_runtime().malloc_device(&p, 4 * kMiB)), ResourceError);
  EXPECT_EQ(f.fake.peek(), cudaSuccess);
}

TEST(CudaRt, AllocLimitParses) {
  EXPECT_EQ(gpu::parse_alloc_limit(nullptr), gpu::kNoAllocLimit);
  EXPECT_EQ(gpu::parse_alloc_limit(""), gpu::kNoAllocLimit);
  EXPECT_EQ(gpu::parse_alloc_limit("0"), 0u);
  EXPECT_EQ(gpu::parse_alloc_limit("12345"), 12345u);
  EXPECT_EQ(gpu::parse_alloc_limit("3K"), 3u << 10);
  EXPECT_EQ(gpu::parse_alloc_limit("512m"), std::size_t{512} << 20);
  EXPECT_EQ(gpu::parse_alloc_limit("2G"), std::size_t{2} << 30);
  for (const char* bad : {"M", "-1", " 5", "5 ", "1.5G", "12MB", "1T", "0x10", "99999999999999999999",
                          "17179869184G"}) {
    try {
      gpu::parse_alloc_limit(bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(gpu::kAllocLimitEnv), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(CudaRt, WithinAllocLimit) {
  EXPECT_TRUE(gpu::within_alloc_limit(0, 100, gpu::kNoAllocLimit));
  EXPECT_TRUE(gpu::within_alloc_limit(60, 40, 100));
  EXPECT_FALSE(gpu::within_alloc_limit(61, 40, 100));
  EXPECT_FALSE(gpu::within_alloc_limit(0, 101, 100));
  EXPECT_FALSE(gpu::within_alloc_limit(~std::size_t{0} - 1, 4, ~std::size_t{0} - 2));  // no wrap-around
}

TEST(CudaRt, AllocLimitRefusesAsARealOutOfMemory) {
  // The device holds 1 GiB; the limit allows 16 MiB. A refusal asks the runtime for more than any
  // device has: the runtime's own state is then that of a real out-of-memory, and it is cleared.
  WithFake f(std::size_t{1} << 30, 16 * kMiB);
  DeviceBuffer<char> a(10 * kMiB);
  const int mallocs = f.fake.mallocs;
  try {
    DeviceBuffer<char> b(8 * kMiB, "the second buffer");
    FAIL() << "the limit did not refuse";
  } catch (const ResourceError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(gpu::kAllocLimitEnv), std::string::npos) << msg;
    EXPECT_NE(msg.find("the second buffer"), std::string::npos) << msg;
  }
  EXPECT_EQ(f.fake.mallocs, mallocs + 1) << "the refusal must go through the runtime";
  EXPECT_EQ(f.fake.peek(), cudaSuccess);
  EXPECT_NO_THROW(DeviceBuffer<char> c(6 * kMiB));  // within the limit again
}

TEST(CudaRt, FailedFreeIsRecordedAndSurfacesAtTheNextCheck) {
  WithFake f(64 * kMiB);
  EXPECT_EQ(gpu::deferred_error_count(), 0u);
  {
    DeviceBuffer<double> a(kMiB);
    f.fake.fail_next_free = true;
  }  // the destructor's free fails: recorded, not thrown
  EXPECT_EQ(gpu::deferred_error_count(), 1u);
  EXPECT_EQ(f.fake.peek(), cudaSuccess) << "the failed free left a stale last error";
  EXPECT_NO_THROW(CUDA_CHECK_LAUNCH("a kernel after the failed free"));
  try {
    gpu::check_deferred_errors();
    FAIL() << "the failed free did not surface";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cudaFree of 8 MiB failed"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cudaErrorIllegalAddress"), std::string::npos) << msg;
  }
  EXPECT_EQ(gpu::deferred_error_count(), 0u);
  EXPECT_NO_THROW(gpu::check_deferred_errors());
}

TEST(CudaRt, PinnedBufferGrowsAndFrees) {
  WithFake f(kMiB);
  gpu::PinnedBuffer<float> p;
  p.reserve(100);
  ASSERT_NE(p.data(), nullptr);
  EXPECT_EQ(p.size(), 100u);
  float* first = p.data();
  p.reserve(50);  // kept
  EXPECT_EQ(p.data(), first);
  p.reserve(1000);
  EXPECT_EQ(p.size(), 1000u);
  EXPECT_EQ(gpu::device_bytes_held(), 0u) << "pinned host memory is not device memory";
}

// ---- the retries that the stale error broke ----

/// The CPU backend behind a device's memory discipline: begin() allocates the chunk through
/// DeviceBuffer (so a fake runtime can refuse it), and every operation that launches a kernel on
/// the CUDA backend checks the runtime's last error first as CUDA_CHECK_LAUNCH does.
/// max_chunk_rows plans from `planned_rows`, not from the fake device, as the CUDA backend plans
/// from cudaMemGetInfo while something else may hold memory.
class DeviceMemoryCpu final : public Backend {
 public:
  DeviceMemoryCpu(std::size_t planned_rows) : inner_(make_backend("cpu", 2)), planned_(planned_rows) {}
  std::string name() const override { return "device-memory-cpu"; }
  std::string device_name() const override { return "fake device"; }
  std::size_t max_chunk_rows(const RunShape&) const override { return planned_; }
  void begin(const RunShape& shape, const Mixture& target) override {
    ++begins;
    chunk_.release();
    chunk_.resize(shape.chunk_rows * static_cast<std::size_t>(shape.d), "the chunk");
    inner_->begin(shape, target);
    begun_rows = shape.chunk_rows;
  }
  void init_chunk(uint64_t first, std::size_t rows) override {
    CUDA_CHECK_LAUNCH("init_normal_kernel");
    inner_->init_chunk(first, rows);
    sync();
  }
  void fill_target(uint64_t first, std::size_t rows) override {
    CUDA_CHECK_LAUNCH("fill_target_kernel");
    inner_->fill_target(first, rows);
    sync();
  }
  void upload_chunk(const double* host, uint64_t first, std::size_t rows) override {
    inner_->upload_chunk(host, first, rows);
    sync();
  }
  void step(const StepCoeffs& c) override {
    CUDA_CHECK_LAUNCH("update_kernel");
    inner_->step(c);
  }
  void download(void* host) const override { inner_->download(host); }
  uint64_t count_nonfinite_rows() const override {
    CUDA_CHECK_LAUNCH("count_nonfinite_kernel");
    return inner_->count_nonfinite_rows();
  }
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override {
    inner_->accumulate_histograms(spec, counts);
  }
  int begins = 0;
  std::size_t begun_rows = 0;

 private:
  void sync() {
    rows_ = inner_->rows();
    first_ = inner_->first();
  }
  std::unique_ptr<Backend> inner_;
  std::size_t planned_;
  DeviceBuffer<float> chunk_;
};

Mixture small_model() {
  PresetParams p;
  p.name = "random-sphere";
  p.d = 8;
  p.K = 3;
  p.radius = 2.0;
  p.seed = 5;
  p.sd = {1.0};
  return make_preset(p);
}

TEST(CudaRt, SamplerRetriesSmallerChunksAfterAnAllocationFailure) {
  const Mixture m = small_model();
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = 10;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.n = 5000;
  o.seed = 11;
  o.eps_samples = 16;
  // The plan says 4096 rows a chunk; the fake device holds 1024 rows of d = 8 floats (32 KiB)
  // and a little: 4096 and 2048 fail, 1024 fits.
  const std::size_t row_bytes = 8 * sizeof(float);
  WithFake f(1024 * row_bytes + 100);
  DeviceMemoryCpu be(4096);
  test::PlacedSink got(o.n, m.d, o.precision);
  RunSummary sum;
  ASSERT_NO_THROW(sum = run_sampler(m, s, o, be, got)) << "the retry failed after the allocation failure";
  EXPECT_EQ(be.begins, 3);
  EXPECT_EQ(sum.chunk_rows, 1024u);
  EXPECT_EQ(sum.chunks, 5u);
  // The particles are those of an unconstrained run (results do not depend on the chunk size).
  auto cpu = make_backend("cpu", 2);
  test::PlacedSink want(o.n, m.d, o.precision);
  run_sampler(m, s, o, *cpu, want);
  ASSERT_EQ(want.y.size(), got.y.size());
  for (std::size_t i = 0; i < want.y.size(); ++i) ASSERT_EQ(want.y[i], got.y[i]) << "value " << i;
}

TEST(CudaRt, BenchGoesOnAfterAConfigurationRunsOutOfMemory) {
  // Two configurations: n = 100000 does not fit the fake device (its check on 512 rows does), then
  // n = 600, which fits. The second must be timed, not fail on the first one's error.
  const std::size_t row_bytes = 8 * sizeof(float);
  WithFake f(4096 * row_bytes);
  DeviceMemoryCpu be(std::size_t{1} << 20);
  BenchOptions opt;
  opt.n = {100000, 600};
  opt.d = {8};
  opt.K = {3};
  opt.T = 4;
  opt.repeats = 1;
  opt.warmup = 0;
  opt.check_rows = 512;
  const BenchReport rep = bench_testing::run_bench_on(be, opt);
  ASSERT_EQ(rep.results.size(), 2u);
  EXPECT_FALSE(rep.results[0].ok);
  EXPECT_EQ(rep.results[0].failure.rfind("resources: ", 0), 0u) << rep.results[0].failure;
  EXPECT_TRUE(rep.results[1].ok) << "the configuration after the out-of-memory one failed: "
                                 << rep.results[1].failure;
  EXPECT_EQ(rep.results[1].seconds.size(), 1u);
}

// ---- on a device: the real runtime under the allocation limit (skips without one) ----

/// Sets the allocation limit for a scope, on the real runtime.
class WithLimit {
 public:
  explicit WithLimit(std::size_t bytes) { gpu::set_device_alloc_limit(bytes); }
  ~WithLimit() { gpu::set_device_alloc_limit(gpu::kNoAllocLimit); }
};

TEST(CudaOomRetry, SamplerHalvesChunksUnderTheLimitOnADevice) {
  GMMDIFF_REQUIRE_GPU();
  // Fused path, d = 16 floats: 1e6 rows are 64 MB of particles, planned as one chunk from the
  // device's free memory; a 64 MiB limit (the coefficient batch takes 16 MiB of it) refuses that
  // chunk through a real cudaMalloc failure, and the retry at 499968 rows fits: 3 chunks.
  PresetParams p;
  p.name = "random-sphere";
  p.d = 16;
  p.K = 8;
  p.radius = 2.0;
  p.seed = 3;
  p.sd = {1.0};
  const Mixture m = make_preset(p);
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = 8;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.n = 1000000;
  o.seed = 4;
  o.eps_samples = 4;
  auto gpu = make_backend("cuda");
  gpu->set_step_path("fused");
  test::PlacedSink free_run(o.n, m.d, o.precision), limited(o.n, m.d, o.precision);
  const RunSummary unlimited = run_sampler(m, s, o, *gpu, free_run);
  EXPECT_EQ(unlimited.chunks, 1u);
  RunSummary sum;
  {
    WithLimit limit(std::size_t{64} << 20);
    ASSERT_NO_THROW(sum = run_sampler(m, s, o, *gpu, limited)) << "the retry failed under the limit";
  }
  EXPECT_EQ(sum.chunk_rows, 499968u);
  EXPECT_EQ(sum.chunks, 3u);
  ASSERT_EQ(free_run.y.size(), limited.y.size());
  for (std::size_t i = 0; i < free_run.y.size(); ++i)
    ASSERT_EQ(free_run.y[i], limited.y[i]) << "value " << i << ": the chunk size changed a particle";
  RecordProperty("oom_retry_chunk_rows", std::to_string(sum.chunk_rows));
}

TEST(CudaOomRetry, BenchGoesOnUnderTheLimitOnADevice) {
  GMMDIFF_REQUIRE_GPU();
  // 4e6 rows of d = 16 do not fit 96 MiB; 1e5 rows do.
  auto gpu = make_backend("cuda");
  BenchOptions opt;
  opt.n = {4000000, 100000};
  opt.d = {16};
  opt.K = {8};
  opt.T = 4;
  opt.repeats = 1;
  opt.warmup = 0;
  opt.path = {"fused"};
  opt.copy_bytes = std::size_t{1} << 20;  // the bandwidth measurement's buffers fit the limit too
  WithLimit limit(std::size_t{96} << 20);
  const BenchReport rep = bench_testing::run_bench_on(*gpu, opt);
  ASSERT_EQ(rep.results.size(), 2u);
  EXPECT_FALSE(rep.results[0].ok);
  EXPECT_EQ(rep.results[0].failure.rfind("resources: ", 0), 0u) << rep.results[0].failure;
  EXPECT_TRUE(rep.results[1].ok) << rep.results[1].failure;
}

}  // namespace
