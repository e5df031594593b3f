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

// Issue 15's key check with issue 11's parameters and the bounds: a row carrying every one of them
// (and the content hashes of its input files) reads back under its own key, and an edit of any of
// them in the line (the key still names the run before the edit) is refused, never taken for the
// run its key names.
TEST(SweepRow, TheKeyCheckCoversEveryParameterAndTheBounds) {
  SweepRow r = sample_row(64);
  r.p.sampler = SamplerKind::DDIMSong;
  r.p.eta = 0.5;
  r.p.score_error = ScoreErrorKind::Bias;
  r.p.eps = 0.25;
  r.p.error_profile = ErrorProfile::FrontLoaded;
  r.p.bias_direction = "1,0";
  r.p.quantities = true;
  r.p.bounds.on = true;
  r.p.bounds.M = 16;
  r.p.bounds.n = 512;
  r.p.schedule = "file";
  r.p.schedule_file = "/tmp/s.json";
  r.p.schedule_hash = "00112233445566ff";
  r.p.tv_files_hash = "ffeeddccbbaa9988";
  r.key = r.p.key();
  const std::string line = row_to_json(r);
  const SweepRow q = parse_row(line);
  EXPECT_EQ(q.key, r.key);
  EXPECT_EQ(q.p.canonical(), r.p.canonical());
  struct Edit {
    const char* from;
    const char* to;
  };
  const Edit edits[] = {{"\"eta\":0.5", "\"eta\":0.75"},
                        {"\"error_profile\":\"front-loaded\"", "\"error_profile\":\"back-loaded\""},
                        {"\"bias_direction\":\"1,0\"", "\"bias_direction\":\"0,1\""},
                        {"\"bounds\":{\"M\":16,\"n\":512}", "\"bounds\":{\"M\":8,\"n\":512}"},
                        {"\"schedule_hash\":\"00112233445566ff\"", "\"schedule_hash\":\"00112233445566fe\""},
                        {"\"tv_files_hash\":\"ffeeddccbbaa9988\"", "\"tv_files_hash\":\"ffeeddccbbaa9989\""}};
  for (const Edit& e : edits) {
    SCOPED_TRACE(e.from);
    const auto at = line.find(e.from);
    ASSERT_NE(at, std::string::npos) << line;
    const std::string edited = line.substr(0, at) + e.to + line.substr(at + std::string(e.from).size());
    try {
      (void)parse_row(edited);
      ADD_FAILURE() << "an edited row was read under its old key: " << edited;
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("is not the key of its params"), std::string::npos) << err.what();
    }
  }
}
