// SweepRow (host/sweep/row.cpp): the JSON line round-trips, the figure is the largest resolved
// statistic, CSV quotes what needs quoting, malformed lines are errors.
#include <gtest/gtest.h>

#include <string>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "util/sweep_util.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

TEST(SweepRow, JsonRoundTripAndFigure) {
  const SweepRow r = sample_row(64);
  const std::string line = row_to_json(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const SweepRow q = parse_row(line);
  EXPECT_EQ(q.key, r.key);
  EXPECT_EQ(q.p.key(), r.p.key());
  ASSERT_EQ(q.stats.size(), 2u);
  EXPECT_EQ(q.stats[1].name, "radial");
  EXPECT_EQ(q.stats[1].ci_lo, -0.1);
  EXPECT_EQ(q.eps_score, 0.25);
  EXPECT_EQ(q.device, r.device);
  EXPECT_EQ(q.figure().name, "means[0]");  // resolved statistics win over larger unresolved ones
  EXPECT_EQ(q.tv(), 0.12);
  const std::string csv = rows_to_csv({q});
  EXPECT_NE(csv.find("\"2 threads, \"\"quoted\"\"\""), std::string::npos) << csv;
  EXPECT_THROW(parse_row("{\"key\": 1}"), Error);
  EXPECT_THROW(parse_row("{not json"), Error);
}
