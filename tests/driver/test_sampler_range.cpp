// The sampler's particle range (SampleOptions::first, count): a run split into consecutive ranges
// gives, range by range, the particles of the whole run bit for bit (what the MPI ranks of
// docs/scale.md rely on), with snapshots; an empty range runs nothing; a range past n is refused.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "util/sink_util.hpp"

using namespace gmmdiff;
using gmmdiff::test::PlacedSink;

namespace {

Mixture diagonal_mixture() {
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = 7;
  pp.K = 5;
  pp.seed = 4;
  Mixture m = make_preset(pp);
  m.cov = Covariance::Diagonal;
  for (int k = 0; k < m.K; ++k)
    for (int j = 0; j < m.d; ++j) m.var_diag.push_back(0.3 + 0.1 * ((k * 3 + j) % 5));
  validate(m);
  return m;
}

}  // namespace

TEST(SamplerRange, RangesMakeTheWholeRunBitForBit) {
  const Mixture m = diagonal_mixture();
  ScheduleParams sp;
  sp.T = 20;
  const Schedule s = make_schedule(sp);
  for (SamplerKind kind : {SamplerKind::DDPM, SamplerKind::DDIM})
    for (Precision prec : {Precision::FP32, Precision::FP64}) {
      SampleOptions o;
      o.n = 1001;  // not a multiple of any split below, nor of the chunk alignment
      o.seed = 17;
      o.sampler = kind;
      o.precision = prec;
      o.score_error = {ScoreErrorKind::Gaussian, 0.2};
      o.eps_samples = 0;
      o.snapshot_steps = {10};
      auto be = make_backend("cpu", 1);
      PlacedSink whole(o.n, m.d, prec);
      run_sampler(m, s, o, *be, whole);
      for (int ranks : {2, 3, 7}) {
        SCOPED_TRACE(testing::Message() << to_string(kind) << " " << to_string(prec) << " ranks=" << ranks);
        PlacedSink parts(o.n, m.d, prec);
        std::vector<double> snap;
        for (int r = 0; r < ranks; ++r) {
          const dist::Range g = dist::split_range(o.n, r, ranks);
          SampleOptions part = o;
          part.first = g.first;
          part.count = g.count;
          part.chunk = 256;  // chunks that straddle no range, unlike the whole run's single chunk
          const RunSummary sum = run_sampler(m, s, part, *be, parts);
          EXPECT_EQ(sum.n, g.count);
          for (const auto& v : parts.snapshot_values) snap.insert(snap.end(), v.begin(), v.end());
          parts.snapshot_values.clear();
        }
        ASSERT_TRUE(parts.y == whole.y) << "the ranges' particles differ from the whole run's";
        ASSERT_TRUE(snap == whole.snapshot_values.at(0)) << "the snapshots of step 10 differ";
      }
    }
}

TEST(SamplerRange, EmptyRangeRunsNothingAndOutsideRangeIsRefused) {
  const Mixture m = diagonal_mixture();
  ScheduleParams sp;
  sp.T = 8;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.n = 10;
  o.first = 10;
  o.count = 0;
  auto be = make_backend("cpu", 1);
  PlacedSink sink(o.n, m.d, o.precision);
  const RunSummary sum = run_sampler(m, s, o, *be, sink);
  EXPECT_EQ(sum.n, 0u);
  EXPECT_EQ(sink.chunks, 0u);
  o.first = 4;
  o.count = 7;  // 4 + 7 > 10
  EXPECT_THROW(check_sample_options(m, s, o), Error);
  o.first = 11;
  o.count = UINT64_MAX;
  EXPECT_THROW(run_sampler(m, s, o, *be, sink), Error);
  o.first = 3;  // to the end: 7 particles
  EXPECT_EQ(range_count(o), 7u);
}
