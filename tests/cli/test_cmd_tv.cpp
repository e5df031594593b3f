// The `tv` command (host/cli/cmd_tv.cpp): its table and JSON, NaN rows, --chunk changing no
// figure, and bad input as one line with nothing written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gmmdiff/model.hpp"
#include "util/cli_util.hpp"
#include "util/sample_util.hpp"

namespace gmmdiff {
namespace {

using test::draw;
using test::isotropic;
using test::temp_path;
using test::write_npy_raw;

// ---- the command ------------------------------------------------------------------------------

TEST(TvCli, ReportsATableAndWritesJson) {
  const Mixture m = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  const std::string y = temp_path("ok.npy"), js = temp_path("ok.json");
  write_npy_raw(y, draw(m, 20000, 1), 20000, 2);
  const auto r = test::run_cli("tv '" + y + "' --preset gaussian --d 2 --stat means,axes,radial --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("means[0]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max: "), std::string::npos) << r.out;
  const nlohmann::json j = nlohmann::json::parse(test::slurp(js));
  EXPECT_EQ(j["n"], 20000);
  EXPECT_EQ(j["stats"].size(), 3u);  // means[0] is axis[0] (e_1): one statistic
  EXPECT_NE(r.out.find("counted once"), std::string::npos) << r.out;
  EXPECT_TRUE(j["max"].contains("ci95"));
}

TEST(TvCli, NanRowsAreCountedAndReported) {
  const Mixture m = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  std::vector<double> data = draw(m, 3000, 2);
  data[10] = NAN;
  data[2 * 500 + 1] = NAN;
  const std::string y = temp_path("nan.npy"), js = temp_path("nan.json");
  write_npy_raw(y, data, 3000, 2);
  const auto r = test::run_cli("tv '" + y + "' --preset gaussian --d 2 --stat axes --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("non-finite rows: 2 of 3000"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("2 of 3000 rows hold NaN or Inf"), std::string::npos) << r.err;
  const nlohmann::json j = nlohmann::json::parse(test::slurp(js));
  EXPECT_EQ(j["nonfinite"], 2);
  EXPECT_EQ(j["finite"], 2998);
}

TEST(TvCli, ChunkOptionChangesNoFigure) {
  const Mixture m = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  std::vector<double> data = draw(m, 2000, 3);
  data[2 * 700] = NAN;
  const std::string y = temp_path("chunk.npy");
  write_npy_raw(y, data, 2000, 2);
  nlohmann::json first;
  for (const std::string chunk : {"0", "1", "7", "256", "5000"}) {
    SCOPED_TRACE("--chunk " + chunk);
    const std::string js = temp_path("chunk_" + chunk + ".json");
    const auto r = test::run_cli("tv '" + y + "' --preset gaussian --d 2 --stat means,axes,radial --chunk " + chunk +
                                 " --json '" + js + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(test::slurp(js));
    EXPECT_EQ(j["nonfinite"], 1);
    if (first.is_null()) first = j;
    EXPECT_EQ(j["stats"], first["stats"]);  // every figure, exactly
  }
}

TEST(TvCli, DefaultStatisticsAndTwoSamples) {
  // The default statistics add meansperp and logp with their KL columns and the selection line;
  // --against compares two files (both in the JSON), and a file against itself has TV 0.
  const Mixture m = isotropic(3, {{2, 0, 0}, {-2, 0, 0}}, {1.0, 1.0}, {0.5, 0.5});
  const std::string a = temp_path("two_a.npy"), b = temp_path("two_b.npy"), js = temp_path("two.json");
  write_npy_raw(a, draw(m, 5000, 7), 5000, 3);
  write_npy_raw(b, draw(m, 4000, 8), 4000, 3);
  auto r = test::run_cli("tv '" + a + "' --preset two-point --d 3 --radius 2 --bootstrap 40");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"meansperp", "logp", "kl_mm", "selection: the largest of", "max KL: "})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " missing from\n" << r.out;
  r = test::run_cli("tv '" + a + "' --preset two-point --d 3 --radius 2 --bootstrap 40 --against '" + b +
                    "' --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("against: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2nd sample m=4000"), std::string::npos) << r.out;
  nlohmann::json j = nlohmann::json::parse(test::slurp(js));
  EXPECT_EQ(j["against_n"], 4000);
  EXPECT_EQ(j["n"], 5000);
  EXPECT_TRUE(j["max_kl"].contains("kl_mm"));
  r = test::run_cli("tv '" + a + "' --preset two-point --d 3 --radius 2 --bootstrap 40 --against '" + a +
                    "' --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(test::slurp(js));
  for (const auto& s : j["stats"]) EXPECT_EQ(s["tv"].get<double>(), 0.0) << s.dump();
}

TEST(TvCli, BadInputIsOneLineNonZeroExitAndNothingWritten) {
  const Mixture m3 = isotropic(3, {{2, 0, 0}}, {1.0}, {1.0});
  const std::string d3 = temp_path("d3.npy"), empty = temp_path("empty.npy");
  write_npy_raw(d3, draw(m3, 100, 1), 100, 3);
  write_npy_raw(empty, {}, 0, 2);
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"'" + d3 + "' --preset gaussian --d 2", "the sample has d = 3 columns but the model has d = 2"},
      {"'" + empty + "' --preset gaussian --d 2", "empty sample (0 rows)"},
      {"'" + d3 + "' --preset gaussian --d 3 --stat bogus", "unknown statistic 'bogus'"},
      {"'" + temp_path("missing.npy") + "' --preset gaussian --d 2", "missing.npy"},
      {"'" + d3 + "' --preset gaussian --d 3 --bins 1", "--bins 1"},
      {"'" + d3 + "' --preset gaussian --d 3 --against '" + empty + "'", "empty sample (0 rows)"},
      {"'" + d3 + "' --preset gaussian --d 3 --against '" + temp_path("nowhere.npy") + "'", "nowhere.npy"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const std::string js = temp_path("bad.json");
    std::remove(js.c_str());
    const auto r = test::run_cli("tv " + c.args + " --json '" + js + "'");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(test::exists(js));
  }
}

}  // namespace
}  // namespace gmmdiff
