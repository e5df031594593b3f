// SweepRow (host/sweep/row.cpp): the JSON line round-trips, the figure is the largest resolved
// statistic, CSV quotes what needs quoting, malformed lines are errors.
#include <gtest/gtest.h>

#include <cmath>
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
  // A row without bounds has none of the bracket's keys (rows written before bounds existed).
  for (const char* k : {"\"tv_upper\"", "\"tv_exact\"", "\"tv_reference\"", "\"bounds\""})
    EXPECT_EQ(line.find(k), std::string::npos) << k;
  EXPECT_FALSE(q.bracket.present);
}

TEST(SweepRow, BracketRoundTripsWithNullsWhereAFigureDoesNotApply) {
  SweepRow r = sample_row(64);
  r.p.bounds.on = true;
  r.p.bounds.M = 16;
  r.p.bounds.n = 512;
  r.key = r.p.key();
  r.bracket.present = true;
  r.bracket.tv_upper = 0.31;
  r.bracket.tv_upper_mean = 0.29;
  r.bracket.tv_upper_se = 0.0125;
  r.bracket.tv_upper_quarter_M = 0.4;
  r.bracket.kl_upper = 0.2;
  r.bracket.kl_upper_mean = 0.1875;
  r.bracket.kl_upper_se = 0.0078125;
  r.bracket.M = 16;
  r.bracket.n = 512;
  r.bracket.tv_reference = 0.25;
  r.bracket.kl_reference = 0.125;
  r.bracket.seconds = 1.5;
  const std::string line = row_to_json(r);
  for (const char* k : {"\"tv_upper\":0.31", "\"tv_upper_mean\":0.29", "\"kl_upper\":0.2", "\"M\":16",
                        "\"tv_exact\":null", "\"tv_exact_ci95\":null", "\"kl_exact\":null", "\"tv_reference\":0.25",
                        "\"bounds\":{\"M\":16,\"n\":512}"})
    EXPECT_NE(line.find(k), std::string::npos) << k << " missing from " << line;
  const SweepRow q = parse_row(line);
  EXPECT_EQ(q.key, r.key);
  EXPECT_EQ(q.p.key(), r.p.key());
  EXPECT_TRUE(q.p.bounds.on);
  EXPECT_EQ(q.p.bounds.n, 512u);
  ASSERT_TRUE(q.bracket.present);
  EXPECT_EQ(q.bracket.tv_upper, 0.31);
  EXPECT_EQ(q.bracket.tv_upper_se, 0.0125);
  EXPECT_EQ(q.bracket.kl_upper_mean, 0.1875);
  EXPECT_EQ(q.bracket.kl_upper_se, 0.0078125);
  EXPECT_EQ(q.bracket.M, 16);
  EXPECT_TRUE(std::isnan(q.bracket.tv_exact));
  EXPECT_TRUE(std::isnan(q.bracket.tv_exact_lo));
  EXPECT_EQ(q.bracket.tv_reference, 0.25);
  EXPECT_EQ(q.bracket.upper_figure(), 0.29);
  const std::string csv = rows_to_csv({q});
  EXPECT_NE(csv.find(",0.31,0.29,0.2,,0.25\n"), std::string::npos) << csv;
  // ddim: the exact figure and its interval.
  r.bracket = RowBracket{};
  r.bracket.present = true;
  r.bracket.tv_exact = 0.2;
  r.bracket.tv_exact_lo = 0.19;
  r.bracket.tv_exact_hi = 0.21;
  r.bracket.kl_exact = 0.05;
  const SweepRow e = parse_row(row_to_json(r));
  EXPECT_EQ(e.bracket.tv_exact_hi, 0.21);
  EXPECT_TRUE(std::isnan(e.bracket.tv_upper));
  EXPECT_EQ(e.bracket.upper_figure(), 0.2);
}
