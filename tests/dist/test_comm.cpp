// The dist layer (host/dist/comm.hpp) without MPI: splitting, the launcher and placement rules,
// and the collective protocols on ranks that are threads of this process (util/thread_comm.hpp):
// an error is reported once by rank 0 with the lowest failing rank's message, block-ordered sums
// do not depend on the rank count, histogram counts sum exactly, one .npy written by every rank is
// the one-process file, or no file at all.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>

#include "dist/comm.hpp"
#include "dist/npy_out.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "util/thread_comm.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

namespace {

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string tmp_dir(const std::string& name) {
  const std::string d = testing::TempDir() + "/dist_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

/// What rank r's exception was: "" (none), or "report:<kind>:<message>" / "silent:<kind>".
std::string outcome(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const dist::JobFailure& f) {
    return (f.report() ? "report:" : "silent:") + std::to_string(int(f.kind())) + (f.report() ? ":" + std::string(f.what()) : "");
  } catch (const std::exception& x) {
    return std::string("other:") + x.what();
  }
}

}  // namespace

TEST(DistSplit, RangesCoverNInRankOrderAsEqualAsPossible) {
  for (uint64_t n : {0ull, 1ull, 2ull, 5ull, 1000ull, 1001ull, (1ull << 40) + 3})
    for (int size : {1, 2, 3, 7, 64}) {
      uint64_t next = 0, lo = UINT64_MAX, hi = 0;
      for (int r = 0; r < size; ++r) {
        const dist::Range g = dist::split_range(n, r, size);
        EXPECT_EQ(g.first, next) << "n=" << n << " size=" << size << " rank=" << r;
        next = g.first + g.count;
        lo = std::min(lo, g.count);
        hi = std::max(hi, g.count);
      }
      EXPECT_EQ(next, n) << "n=" << n << " size=" << size;
      EXPECT_LE(hi - lo, 1u) << "n=" << n << " size=" << size;
    }
  EXPECT_THROW(dist::split_range(10, 3, 3), Error);
  EXPECT_THROW(dist::split_range(10, 0, 0), Error);
}

TEST(DistSession, LaunchersAreRecognisedFromTheirEnvironment) {
  const std::vector<std::pair<std::map<std::string, std::string>, bool>> cases = {
      {{}, false},
      {{{"OMPI_COMM_WORLD_SIZE", "4"}}, true},
      {{{"PMIX_RANK", "0"}}, true},
      {{{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}}, true},
      {{{"MPI_LOCALRANKID", "0"}}, true},
      {{{"SLURM_STEP_NUM_TASKS", "8"}}, true},
      {{{"SLURM_STEP_NUM_TASKS", "1"}, {"SLURM_JOB_ID", "7"}}, false},  // a one-task step: one process
      {{{"OMPI_COMM_WORLD_SIZE", ""}}, false},
  };
  for (const auto& [env, want] : cases) {
    std::ostringstream os;
    for (const auto& [k, v] : env) os << k << "=" << v << " ";
    EXPECT_EQ(dist::launched_by_mpi([&](const char* name) -> const char* {
                const auto it = env.find(name);
                return it == env.end() ? nullptr : it->second.c_str();
              }),
              want)
        << os.str();
  }
}

TEST(DistSession, EachLocalRankGetsItsGpuAndItsShareOfTheCores) {
  EXPECT_EQ(dist::gpu_for_rank(nullptr, 4, 0).value_or("-"), "0");
  EXPECT_EQ(dist::gpu_for_rank(nullptr, 4, 3).value_or("-"), "3");
  EXPECT_EQ(dist::gpu_for_rank(nullptr, 2, 3).value_or("-"), "1");  // more ranks than GPUs: round robin
  EXPECT_FALSE(dist::gpu_for_rank(nullptr, 0, 1).has_value());      // no GPU: nothing to choose
  EXPECT_FALSE(dist::gpu_for_rank(nullptr, 1, 1).has_value());
  EXPECT_EQ(dist::gpu_for_rank("2,3", 0, 1).value_or("-"), "3");    // the launcher's list, by local rank
  EXPECT_EQ(dist::gpu_for_rank("GPU-a, GPU-b", 0, 2).value_or("-"), "GPU-a");
  EXPECT_FALSE(dist::gpu_for_rank("5", 0, 1).has_value());         // one device per rank already
  EXPECT_FALSE(dist::gpu_for_rank("", 8, 1).has_value());          // set but empty: no device at all
  EXPECT_EQ(dist::cpu_share(16, 16, 4), 4);  // not bound: the machine's CPUs shared by its ranks
  EXPECT_EQ(dist::cpu_share(2, 2, 3), 1);    // oversubscribed: at least one
  EXPECT_EQ(dist::cpu_share(4, 16, 4), 4);   // bound by the launcher: the CPUs it gave
  EXPECT_EQ(dist::cpu_share(8, 8, 1), 8);
}

TEST(DistSerial, OneProcessIsTheIdentity) {
  dist::Comm& c = dist::serial();
  EXPECT_EQ(c.size(), 1);
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.all_gather("x"), std::vector<std::string>{"x"});
  // collective() with one process: f is called and what it throws is what the caller gets.
  EXPECT_THROW(dist::collective(c, [] { throw ResourceError("big"); }), ResourceError);
  EXPECT_THROW(dist::collective(c, [] { throw NumericalError("nan"); }), NumericalError);
  int calls = 0;
  dist::on_root(c, [&] { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST(DistCollective, RankZeroReportsTheLowestFailingRankOnceAndEveryRankFails) {
  // Rank 2 alone fails: rank 0 reports it (naming rank 2), ranks 1 and 2 are silent.
  auto e = run_ranks(3, [](dist::Comm& c) {
    dist::collective(c, [&] {
      if (c.rank() == 2) throw NumericalError("a particle became NaN");
    });
  });
  EXPECT_EQ(outcome(e[0]), "report:0:rank 2 of 3: a particle became NaN");
  EXPECT_EQ(outcome(e[1]), "silent:0");
  EXPECT_EQ(outcome(e[2]), "silent:0");
  // Every rank fails the same way (a bad input): reported as one process would, once.
  e = run_ranks(4, [](dist::Comm& c) { dist::collective(c, [] { throw Error("--T = 0"); }); });
  EXPECT_EQ(outcome(e[0]), "report:0:--T = 0");
  for (int r = 1; r < 4; ++r) EXPECT_EQ(outcome(e[r]), "silent:0") << "rank " << r;
  // Kinds keep their exit codes: resources, internal errors.
  e = run_ranks(2, [](dist::Comm& c) {
    dist::collective(c, [&] {
      if (c.rank() == 1) throw ResourceError("no memory");
      if (c.rank() == 0) throw std::runtime_error("bug");
    });
  });
  EXPECT_EQ(outcome(e[0]), "report:2:bug");
  EXPECT_EQ(outcome(e[1]), "silent:2");
  e = run_ranks(3, [](dist::Comm& c) {
    dist::collective(c, [&] {
      if (c.rank() >= 1) throw ResourceError("no memory");
    });
  });
  EXPECT_EQ(outcome(e[0]), "report:1:rank 1 of 3: no memory");
  // Nobody fails: nobody throws, and on_root runs on rank 0 alone.
  std::atomic<int> calls{0};
  e = run_ranks(3, [&](dist::Comm& c) {
    dist::collective(c, [] {});
    dist::on_root(c, [&] { calls += c.rank() == 0 ? 1 : 100; });
  });
  for (const auto& x : e) EXPECT_EQ(outcome(x), "");
  EXPECT_EQ(calls.load(), 1);
}

TEST(DistReduce, BlockOrderedSumsDoNotDependOnTheRankCount) {
  // 37 blocks of values whose float sum depends on the order: each rank sums its blocks; the
  // gathered partials summed in block order give the same bits for every rank count.
  const uint64_t nblocks = 37;
  std::vector<std::vector<double>> values(nblocks);
  std::mt19937_64 g(5);
  std::uniform_real_distribution<double> u(-1, 1);
  for (auto& v : values)
    for (int i = 0; i < 50; ++i) v.push_back(std::ldexp(u(g), static_cast<int>(g() % 60) - 30));
  auto partial = [&](uint64_t b, std::size_t k) {
    double s = 0;
    for (double x : values[b]) s += k == 0 ? x : x * x;
    return s;
  };
  double ref[2] = {0, 0};
  for (uint64_t b = 0; b < nblocks; ++b)
    for (std::size_t k = 0; k < 2; ++k) ref[k] += partial(b, k);
  for (int size : {1, 2, 3, 5, 37, 40}) {
    std::vector<double> got0(2, 0.0);
    auto e = run_ranks(size, [&](dist::Comm& c) {
      const dist::Range mine = dist::split_range(nblocks, c.rank(), c.size());
      std::vector<double> parts;
      for (uint64_t b = mine.first; b < mine.first + mine.count; ++b)
        for (std::size_t k = 0; k < 2; ++k) parts.push_back(partial(b, k));
      const std::vector<double> all = dist::gather_blocks(c, parts, nblocks, 2);
      double s[2] = {0, 0};
      for (uint64_t b = 0; b < nblocks; ++b)
        for (std::size_t k = 0; k < 2; ++k) s[k] += all[b * 2 + k];
      if (c.rank() == 0) got0 = {s[0], s[1]};
      if (s[0] != ref[0] || s[1] != ref[1]) throw std::runtime_error("rank " + std::to_string(c.rank()) + " differs");
    });
    for (const auto& x : e) EXPECT_EQ(outcome(x), "") << "size " << size;
    EXPECT_EQ(got0[0], ref[0]) << "size " << size;
    EXPECT_EQ(got0[1], ref[1]) << "size " << size;
  }
}

TEST(DistReduce, HistogramCountsSumExactly) {
  HistogramCounts want;
  want.one_d = {std::vector<uint64_t>(5, 0), std::vector<uint64_t>(3, 0)};
  want.two_d = {std::vector<uint64_t>(6, 0)};
  std::vector<HistogramCounts> per(4, want);
  std::mt19937_64 g(9);
  for (auto& c : per) {
    for (auto& v : c.one_d)
      for (auto& x : v) x = g() % 1000;
    for (auto& x : c.two_d[0]) x = (uint64_t(1) << 40) + g() % 7;
    c.rows = 10 + g() % 5;
    c.nonfinite_rows = g() % 3;
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t b = 0; b < want.one_d[i].size(); ++b) want.one_d[i][b] += c.one_d[i][b];
    for (std::size_t b = 0; b < 6; ++b) want.two_d[0][b] += c.two_d[0][b];
    want.rows += c.rows;
    want.nonfinite_rows += c.nonfinite_rows;
  }
  auto e = run_ranks(4, [&](dist::Comm& c) {
    HistogramCounts mine = per[c.rank()];
    dist::sum_counts(c, mine);
    if (mine.one_d != want.one_d || mine.two_d != want.two_d || mine.rows != want.rows ||
        mine.nonfinite_rows != want.nonfinite_rows)
      throw std::runtime_error("rank " + std::to_string(c.rank()) + ": wrong sums");
  });
  for (const auto& x : e) EXPECT_EQ(outcome(x), "");
  // Shapes that differ between ranks are a bug, not a silent mix.
  e = run_ranks(2, [&](dist::Comm& c) {
    HistogramCounts mine = per[0];
    if (c.rank() == 1) mine.one_d[1].push_back(1);
    dist::sum_counts(c, mine);
  });
  EXPECT_NE(outcome(e[0]), "");
}

TEST(DistNpy, EveryRankItsRowsMakeTheOneProcessFile) {
  const std::string dir = tmp_dir("npy");
  const uint64_t rows = 1003;
  const int cols = 3;
  for (bool fp64 : {false, true}) {
    std::vector<double> v(rows * cols);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * double(i)) * 1e3;
    const std::string want_path = dir + "/want.npy", got_path = dir + "/got.npy";
    write_npy(want_path, v.data(), rows, cols, !fp64);
    for (int size : {1, 2, 3, 8}) {
      SCOPED_TRACE(testing::Message() << (fp64 ? "fp64" : "fp32") << " ranks=" << size);
      std::filesystem::remove(got_path);
      auto e = run_ranks(size, [&](dist::Comm& c) {
        dist::SharedNpyOut out(c, {got_path}, rows, cols, fp64);
        const dist::Range mine = dist::split_range(rows, c.rank(), c.size());
        // In two pieces, the second first: the order of a rank's writes does not matter.
        const uint64_t half = mine.count / 2;
        for (uint64_t at : {mine.first + half, mine.first}) {
          const uint64_t n = at == mine.first ? half : mine.count - half;
          std::vector<float> f32(v.begin() + at * cols, v.begin() + (at + n) * cols);
          out.file(0).write_rows(at, fp64 ? static_cast<const void*>(v.data() + at * cols) : f32.data(), n);
        }
        out.commit();
      });
      for (const auto& x : e) ASSERT_EQ(outcome(x), "");
      EXPECT_TRUE(bytes_of(got_path) == bytes_of(want_path));
    }
  }
  // A rank that fails before commit: every rank fails, and neither the file nor a temporary is left.
  const std::string path = dir + "/failed.npy";
  auto e = run_ranks(3, [&](dist::Comm& c) {
    dist::SharedNpyOut out(c, {path, dir + "/failed.t5.npy"}, 10, 2, false);
    dist::collective(c, [&] {
      if (c.rank() == 1) throw NumericalError("diverged");
    });
    out.commit();
  });
  EXPECT_EQ(outcome(e[0]), "report:0:rank 1 of 3: diverged");
  std::size_t left = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    left += f.path().filename().string().rfind("failed", 0) == 0;
  EXPECT_EQ(left, 0u) << "a failed run left files in " << dir;
  // A path that cannot be written: reported once, by rank 0, before any rank writes.
  e = run_ranks(2, [&](dist::Comm& c) { dist::SharedNpyOut out(c, {dir + "/no/such/dir/x.npy"}, 10, 2, false); });
  EXPECT_NE(outcome(e[0]).find("report:0:"), std::string::npos) << outcome(e[0]);
  EXPECT_EQ(outcome(e[1]), "silent:0");
}
