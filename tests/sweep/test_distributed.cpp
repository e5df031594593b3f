// A sweep over the ranks of a job (host/sweep/distributed.cpp), the ranks being threads of this
// process (util/thread_comm.hpp): rank 0 alone writes results.jsonl, every run once, with the
// figures of one process; a resume with another rank count finishes it; a sweep whose runs fail is
// every rank's error, reported once, with the rows of the runs that finished kept.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "sweep/distributed.hpp"
#include "util/sweep_util.hpp"
#include "util/thread_comm.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

namespace {

const char* const kSweep = R"({"name": "dist", "family": "random-sphere", "d": [2, 3], "K": 3, "T": [6, 12, 24],
  "n": 900, "seeds": [0, 1], "tv": {"stats": "means,radial", "bootstrap": 20}, "backend": "cpu"})";

}  // namespace

TEST(SweepDistributed, RanksWriteEveryRunOnceWithTheOneProcessFigures) {
  const SweepSpec spec = parse_sweep(kSweep, "dist.json");
  ASSERT_EQ(spec.runs.size(), 12u);
  const std::string one = fresh_dir("dist_one");
  SweepRunOptions o;
  o.out_dir = one;
  o.threads = 1;
  run_sweep(spec, o);
  const auto want = rows_by_key(one + "/results.jsonl");
  ASSERT_EQ(want.size(), 12u);
  for (int size : {2, 3, 5}) {
    SCOPED_TRACE(testing::Message() << size << " ranks");
    const std::string dir = fresh_dir("dist_" + std::to_string(size));
    SweepRunOptions od = o;
    od.out_dir = dir;
    std::vector<std::size_t> seen;
    SweepOutcome root_out;
    auto e = run_ranks(size, [&](dist::Comm& c) {
      SweepCallbacks cb;
      cb.on_row = [&](const SweepRow&, std::size_t i, std::size_t) { seen.push_back(i); };  // rank 0's thread only
      const SweepOutcome out = run_sweep(spec, od, cb, c);
      if (c.root()) root_out = out;
      else if (!out.rows.empty()) throw std::runtime_error("a rank other than 0 returned rows");
    });
    for (int r = 0; r < size; ++r) ASSERT_FALSE(e[r]) << "rank " << r;
    EXPECT_EQ(rows_by_key(dir + "/results.jsonl"), want);
    EXPECT_EQ(root_out.ran, 12u);
    ASSERT_EQ(root_out.rows.size(), 12u);
    for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(root_out.rows[i].key, spec.runs[i].key());  // in run order
    EXPECT_EQ(seen, (std::vector<std::size_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  }
}

TEST(SweepDistributed, ResumesWithAnotherRankCountAndDoesOnlyWhatIsLeft) {
  const SweepSpec spec = parse_sweep(kSweep, "dist.json");
  const std::string dir = fresh_dir("dist_resume");
  SweepRunOptions o;
  o.out_dir = dir;
  o.threads = 1;
  // Five rows from one process, the last one cut as kill -9 during its write would leave it.
  run_sweep(spec, o);
  const auto want = rows_by_key(dir + "/results.jsonl");
  const auto lines = lines_of(dir + "/results.jsonl");
  std::string kept;
  for (int i = 0; i < 4; ++i) kept += lines[i] + "\n";
  write_text(dir + "/results.jsonl", kept + lines[4].substr(0, 30));
  std::size_t done_before = 0, ran = 0;
  auto e = run_ranks(3, [&](dist::Comm& c) {
    const SweepOutcome out = run_sweep(spec, o, {}, c);
    if (c.root()) done_before = out.done_before, ran = out.ran;
  });
  for (const auto& x : e) ASSERT_FALSE(x);
  EXPECT_EQ(done_before, 4u);
  EXPECT_EQ(ran, 8u);
  EXPECT_EQ(rows_by_key(dir + "/results.jsonl"), want);
}

TEST(SweepDistributed, AFailingRunEndsEveryRankWithOneReport) {
  // The model file changes after the sweep was parsed. On main every run then failed on whichever
  // rank took it; since issue 15 a sweep reads its inputs once, when it is parsed, so the edit does
  // not reach the runs: every rank finishes and every row is of the parsed model (d = 2).
  const std::string dir = fresh_dir("dist_fail");
  const std::string model = write_text(dir + "/m.json", R"({"weights": [1], "means": [[0, 1]], "sd": [1]})");
  const SweepSpec spec = parse_sweep(R"({"name": "f", "family": {"model": ")" + model +
                                         R"("}, "T": [4, 5, 6, 7], "n": 300, "backend": "cpu"})",
                                     dir + "/f.json", dir);
  write_text(model, R"({"weights": [1], "means": [[0, 1, 2]], "sd": [1]})");
  SweepRunOptions o;
  o.out_dir = dir + "/out";
  o.threads = 1;
  auto e = run_ranks(3, [&](dist::Comm& c) { run_sweep(spec, o, {}, c); });
  for (int r = 0; r < 3; ++r) EXPECT_FALSE(e[r]) << "rank " << r << " failed";
  const std::vector<SweepRow> rows = read_results(o.out_dir + "/results.jsonl");
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& row : rows) EXPECT_EQ(row.p.d, 2) << row.key;
  // A different sweep on one rank (its files differ) is refused before anything runs.
  const SweepSpec other = parse_sweep(kTinySweep, "tiny.json");
  const SweepSpec mine = parse_sweep(kSweep, "dist.json");
  o.out_dir = dir + "/mixed";
  e = run_ranks(2, [&](dist::Comm& c) { run_sweep(c.rank() == 1 ? other : mine, o, {}, c); });
  ASSERT_TRUE(e[0]);
  try {
    std::rethrow_exception(e[0]);
  } catch (const dist::JobFailure& f) {
    EXPECT_NE(std::string(f.what()).find("rank 1 expanded a different sweep"), std::string::npos) << f.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/mixed/results.jsonl"));
}
