// KSpec (host/sweep/k_spec.hpp): K as a sweep writes it, an integer or a linear expression in d,
// resolved at each d and written back in one canonical form; anything else is an error.
#include <gtest/gtest.h>

#include "gmmdiff/error.hpp"
#include "sweep/k_spec.hpp"

using namespace gmmdiff;

TEST(SweepParse, KSpecExpressions) {
  struct Case {
    const char* text;
    int d, K;
    const char* canonical;
  } cases[] = {{"8", 5, 8, "8"},     {"d", 5, 5, "d"},       {"4d", 5, 20, "4d"},     {"4*d", 5, 20, "4d"},
               {"d+1", 5, 6, "d+1"}, {"2d-1", 5, 9, "2d-1"}, {" d + 2 ", 3, 5, "d+2"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const KSpec k = KSpec::parse(c.text, "test");
    EXPECT_EQ(k.resolve(c.d), c.K);
    EXPECT_EQ(k.text, c.canonical);
  }
  for (const char* bad : {"", "x", "d+", "-d", "0d", "d*2", "1.5", "dd"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(KSpec::parse(bad, "test"), Error);
  }
}
