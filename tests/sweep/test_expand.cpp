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
  // eps without a score error, variance under ddim and K of two-point do not make new runs; the
  // rows record what ran (eps 0, variance beta, K 2). Each axis applies to some runs here: an axis
  // that applies to none is refused (test_parse.cpp, AnAxisThatAppliesToNoRunIsRefused).
  const SweepSpec s = parse_sweep(
      R"({"family": ["two-point", "random-sphere"], "K": [2, "d"], "d": 2, "score_error": ["none", "bias"],
          "eps": [0.1, 0.2], "sampler": ["ddpm", "ddim"], "variance": ["beta", "posterior"], "T": 16, "n": 100})",
      "t.json");
  // per family: errors {none, bias 0.1, bias 0.2} x samplers {ddpm beta, ddpm posterior, ddim};
  // two-point once, random-sphere for K = 2 and K = "d" (two keys, though both are 2 at d = 2).
  ASSERT_EQ(s.runs.size(), 27u);
  for (const auto& r : s.runs) {
    SCOPED_TRACE(r.label());
    if (r.preset == "two-point") {
      EXPECT_EQ(r.K_spec, "2");
    }
    if (r.score_error == ScoreErrorKind::None) {
      EXPECT_EQ(r.eps, 0.0);
    }
    if (r.sampler == SamplerKind::DDIM) {
      EXPECT_EQ(r.variance, Variance::Beta);
    }
  }
}
