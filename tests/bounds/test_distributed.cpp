// The path bound and the exact density over the ranks of a job (host/bounds/distributed.hpp), the
// ranks being threads of this process (util/thread_comm.hpp): the outer draws (particles) split in
// fixed blocks whose Welford states merge in block order, so every rank count gives one process's
// figures bit for bit, with several chunk sizes too; a refused option is reported once.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "bounds/bounds_cpu.hpp"
#include "bounds/distributed.hpp"
#include "gmmdiff/error.hpp"
#include "util/thread_comm.hpp"

using namespace gmmdiff;

namespace {

Mixture three_components() {
  Mixture m;
  m.K = 3;
  m.d = 4;
  m.means = {1, 0, 0, 0, 0, -1, 0.5, 0, 0, 0, 1.5, -1};
  m.sd = {0.6, 1.0, 0.8};
  m.weights = {0.5, 0.3, 0.2};
  validate(m);
  return m;
}

Schedule lcw(int T) {
  ScheduleParams p;
  p.T = T;
  return make_schedule(p);
}

bool same(const MeanSe& a, const MeanSe& b) { return std::memcmp(&a, &b, sizeof(MeanSe)) == 0; }

}  // namespace

TEST(BoundsDistributed, PathBoundIsTheOneProcessFigureOnAnyRankCount) {
  const Mixture m = three_components();
  const Schedule s = lcw(10);
  SampleOptions o;
  o.seed = 3;
  o.score_error = {ScoreErrorKind::Bias, 0.2};
  BoundsOptions bo;
  bo.n = 1000;  // blocks of 64 outer draws (the unit for M = 8 is 32): 16 blocks, the last one short
  bo.M = 8;
  CpuBoundsKernels one(1);
  const PathBound want = path_bound(m, s, o, bo, one);
  for (int size : {1, 2, 3, 7, 20})
    for (uint64_t chunk : {uint64_t(0), uint64_t(32), uint64_t(96)}) {
      SCOPED_TRACE(testing::Message() << size << " ranks, chunk " << chunk);
      BoundsOptions b = bo;
      b.chunk = chunk;
      PathBound got;
      auto e = test::run_ranks(size, [&](dist::Comm& c) {
        CpuBoundsKernels kr(1);
        const PathBound r = path_bound(m, s, o, b, kr, c);
        if (c.root()) got = r;
      });
      for (const auto& x : e) ASSERT_FALSE(x);
      EXPECT_TRUE(same(got.tv, want.tv) && same(got.kl, want.kl) && same(got.tv_quarter, want.tv_quarter) &&
                  same(got.kl_quarter, want.kl_quarter))
          << "U_TV " << got.tv.mean << " vs " << want.tv.mean;
      EXPECT_EQ(got.n, want.n);
      EXPECT_EQ(got.x0x1.bound, want.x0x1.bound);
    }
}

TEST(BoundsDistributed, ExactDensityIsTheOneProcessFigureOnAnyRankCount) {
  const Mixture m = three_components();
  const Schedule s = lcw(8);
  SampleOptions o;
  o.sampler = SamplerKind::DDIM;
  o.seed = 11;
  o.score_error = {ScoreErrorKind::Means, 0.1};
  BoundsOptions bo;
  bo.n = 2900;  // blocks of 256 particles: 12 blocks, the last one short
  CpuBoundsKernels one(2);
  const ExactDensity want = exact_density(m, s, o, bo, one);
  for (int size : {2, 3, 5}) {
    SCOPED_TRACE(testing::Message() << size << " ranks");
    ExactDensity got;
    auto e = test::run_ranks(size, [&](dist::Comm& c) {
      CpuBoundsKernels kr(1);
      const ExactDensity r = exact_density(m, s, o, bo, kr, c);
      if (c.root()) got = r;
    });
    for (const auto& x : e) ASSERT_FALSE(x);
    EXPECT_TRUE(same(got.tv, want.tv) && same(got.kl, want.kl)) << "TV " << got.tv.mean << " vs " << want.tv.mean;
  }
}

TEST(BoundsDistributed, ARefusalIsReportedOnceByRankZero) {
  const Mixture m = three_components();
  SampleOptions o;
  o.sampler = SamplerKind::DDIM;  // the path bound is for ddpm
  BoundsOptions bo;
  bo.n = 100;
  auto e = test::run_ranks(3, [&](dist::Comm& c) {
    CpuBoundsKernels kr(1);
    path_bound(m, lcw(6), o, bo, kr, c);
  });
  int reported = 0;
  for (const auto& x : e) {
    try {
      std::rethrow_exception(x);
    } catch (const dist::JobFailure& f) {
      reported += f.report();
      if (f.report()) {
        EXPECT_NE(std::string(f.what()).find("the path bound is for the stochastic sampler"), std::string::npos)
            << f.what();
      }
    } catch (...) {
      ADD_FAILURE() << "not a JobFailure";
    }
  }
  EXPECT_EQ(reported, 1);
}
