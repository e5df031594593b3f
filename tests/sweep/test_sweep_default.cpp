// The embedded default sweeps (host/sweep/sweep_default.cpp): both parse, and hold the families
// and sds the question "is DDPM dimension-free on mixtures?" needs, on the backend they are sized for,
// and every run carries the bounds (the upper side a "confirmed" verdict needs).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "gmmdiff/sweep.hpp"

using namespace gmmdiff;

TEST(SweepParse, EmbeddedDefaultsParse) {
  for (const char* kind : {"cpu", "cuda"}) {
    SCOPED_TRACE(kind);
    const SweepSpec s = parse_sweep(default_sweep_json(kind), std::string("default ") + kind);
    EXPECT_GT(s.runs.size(), 50u);
    std::set<std::string> families;
    std::set<double> sds;
    for (const auto& r : s.runs) {
      families.insert(r.family);
      sds.insert(r.sd);
      EXPECT_EQ(r.backend, kind);
      EXPECT_TRUE(r.bounds.on) << r.canonical();
      EXPECT_GE(r.bounds.M, 8) << r.canonical();
      EXPECT_GE(r.bounds.n, 256u) << r.canonical();
    }
    EXPECT_TRUE(families.count("two-point") && families.count("random-sphere"));
    EXPECT_TRUE(sds.count(1.0) && sds.size() >= 2);
  }
}
