// The expansion of a sweep's axes into runs (host/sweep/expand.cpp): the Cartesian product in a
// fixed order, and the axes that do not apply collapsing instead of making new runs.
#include <gtest/gtest.h>

#include <string>

#include "gmmdiff/sweep.hpp"

using namespace gmmdiff;

TEST(SweepParse, ScalarsAndListsExpandInFixedOrder) {
  const SweepSpec s = parse_sweep(
      R"({"family": "random-sphere", "d": [2, 4], "K": "d", "T": [8, 16], "seeds": 2, "n": 100})", "t.json");
  ASSERT_EQ(s.runs.size(), 8u);
  // d outer, then T, then seed innermost.
  const int want[8][3] = {{2, 8, 0}, {2, 8, 1}, {2, 16, 0}, {2, 16, 1}, {4, 8, 0}, {4, 8, 1}, {4, 16, 0}, {4, 16, 1}};
  for (int i = 0; i < 8; ++i) {
    SCOPED_TRACE("run " + std::to_string(i) + ": " + s.runs[i].label());
    EXPECT_EQ(s.runs[i].d, want[i][0]);
    EXPECT_EQ(s.runs[i].T, want[i][1]);
    EXPECT_EQ(s.runs[i].seed, static_cast<uint64_t>(want[i][2]));
    EXPECT_EQ(s.runs[i].K, s.runs[i].d);
    EXPECT_EQ(s.runs[i].K_spec, "d");
    EXPECT_EQ(s.runs[i].tv.seed, s.runs[i].seed);
  }
  EXPECT_EQ(s.name, "t");
}

TEST(SweepParse, AxesThatDoNotApplyCollapse) {
  // eps without a score error, variance under ddim and K of two-point do not make new runs.
  const SweepSpec s = parse_sweep(
      R"({"family": "two-point", "K": [2, "d"], "eps": [0.1, 0.2], "sampler": ["ddpm", "ddim"],
          "variance": ["beta", "posterior"], "T": 16, "n": 100})",
      "t.json");
  // ddpm x {beta, posterior} + ddim once.
  ASSERT_EQ(s.runs.size(), 3u);
  for (const auto& r : s.runs) {
    SCOPED_TRACE(r.label());
    EXPECT_EQ(r.K, 2);
    EXPECT_EQ(r.eps, 0.0);
  }
}
