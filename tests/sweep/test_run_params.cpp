// RunParams (host/sweep/run_params.cpp): a run's key is stable across spellings of the same values
// (0.5 and 5e-1, a scalar and a list of one) and changes with anything that changes the result.
#include <gtest/gtest.h>

#include "gmmdiff/sweep.hpp"

using namespace gmmdiff;

TEST(SweepParse, KeysAreStableAndCanonical) {
  const auto a = parse_sweep(R"({"sd": 0.5, "T": 16, "n": 100})", "a.json").runs.at(0);
  const auto b = parse_sweep(R"({"sd": 5e-1, "T": [16], "n": 1e2})", "b.json").runs.at(0);
  EXPECT_EQ(a.key(), b.key());
  EXPECT_EQ(a.key().size(), 16u);
  auto c = a;
  c.seed = 1;
  EXPECT_NE(a.key(), c.key());
  c = a;
  c.tv.bins = 30;
  EXPECT_NE(a.key(), c.key());
}
