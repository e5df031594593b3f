// parse_sweep (host/sweep/parse.cpp, with parse_context.cpp and axes.cpp): the grids, model-file
// families, and bad input as one clear line naming the file, the key and what is allowed.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "util/sweep_util.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

namespace {

std::string error_of(const std::string& json) {
  try {
    parse_sweep(json, "t.json", ".");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SweepParse, GridsAreAUnionOverridingTheTopLevel) {
  const SweepSpec s = parse_sweep(
      R"({"family": "two-point", "d": [2, 4], "n": 100,
          "grids": [{"T": [8, 16]}, {"T": 16, "score_error": "means", "eps": [0.1, 0.2]}, {"T": 8}]})",
      "t.json");
  // 2 d x 2 T, then 2 d x 2 eps at T = 16; the third grid repeats runs of the first.
  ASSERT_EQ(s.runs.size(), 8u);
  EXPECT_EQ(s.runs[4].score_error, ScoreErrorKind::Means);
  std::set<std::string> keys;
  for (const auto& r : s.runs) EXPECT_TRUE(keys.insert(r.key()).second) << r.label();
}

TEST(SweepParse, UnknownKeysNameTheKeyAndListTheAllowedOnes) {
  const std::string e = error_of(R"({"Ts": [8], "n": 100})");
  SCOPED_TRACE(e);
  EXPECT_NE(e.find("t.json"), std::string::npos);
  EXPECT_NE(e.find("\"Ts\""), std::string::npos);
  EXPECT_NE(e.find("did you mean \"T\""), std::string::npos);
  EXPECT_NE(e.find("allowed:"), std::string::npos);
  EXPECT_NE(e.find("family"), std::string::npos);
  EXPECT_EQ(e.find('\n'), std::string::npos);
  for (const char* j : {R"({"T": 8, "tv": {"bin": 3}})", R"({"T": 8, "family": {"name": "simplex", "k": 3}})",
                        R"({"T": 8, "grids": [{"name": "x"}]})", R"({"T": 8, "schedule": {"nam": "lcw"}})"}) {
    const std::string m = error_of(j);
    SCOPED_TRACE(j);
    EXPECT_NE(m.find("unknown key"), std::string::npos) << m;
    EXPECT_NE(m.find("allowed:"), std::string::npos) << m;
  }
}

TEST(SweepParse, ImpossibleValuesAreOneClearLine) {
  struct Case {
    const char* json;
    const char* says;
  } cases[] = {
      {R"({"T": 1})", "T >= 2"},
      {R"({"T": 0})", "out of range"},
      {R"({"T": 8, "d": 0})", "out of range"},
      {R"({"T": 8, "family": "random-sphere", "K": 0})", "out of range"},
      {R"({"T": 8, "family": "random-sphere", "K": "d-3", "d": 2})", "K >= 1"},
      {R"({"T": 8, "family": "simplex", "d": 2, "K": 4})", "d + 1"},
      {R"({"T": 8, "family": {"name": "random-sphere", "K": 2, "full_rank": true}, "d": 4})", "full rank"},
      {R"({"T": 8, "family": {"name": "two-point", "K": 3}})", "K = 2"},
      {R"({"T": 8, "sd": 0})", "sd > 0"},
      {R"({"T": 8, "radius": -1})", "radius >= 0"},
      {R"({"T": 8, "n": 5})", "out of range"},
      {R"({"T": 8, "seeds": 0})", "out of range"},
      {R"({"T": 8, "seeds": []})", "empty list"},
      {R"({"T": 8, "score_error": "means", "eps": -0.1})", "eps >= 0"},
      {R"({"T": 8, "family": "blob"})", "unknown family"},
      {R"({"T": 8, "sampler": "euler"})", "sampler"},
      {R"({"T": 8, "backend": "gpu"})", "allowed: auto, cpu, cuda"},
      {R"({"T": 8, "schedule": "fast"})", "unknown schedule"},
      {R"({"T": 8.5})", "integer"},
      {R"({"d": 4})", "missing"},
      {R"({"T": 8, "family": {"model": "/nonexistent/model.json"}})", "family.model"},
      {R"({"T": 8,})", "not valid JSON"},
      {R"([8, 16])", "JSON object"},
      {R"({"T": 8, "bounds": {"M": 0}})", "bounds.M"},
      {R"({"T": 8, "bounds": {"n": 1}})", "bounds.n"},
      {R"({"T": 8, "bounds": {"m": 4}})", "\"bounds\""},
      {R"({"T": 8, "bounds": 4})", "bounds"},
      {R"({"T": 8, "sampler": "ddim", "score_error": "gaussian", "eps": 0.1, "bounds": {}})", "gaussian"},
      {R"({"T": 8, "stop": 0, "variance": "posterior", "bounds": {}})", "bounds"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    const std::string e = error_of(c.json);
    EXPECT_NE(e.find(c.says), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST(SweepParse, BoundsAreAnAxisAndChangeTheKeyOnlyWhenOn) {
  const SweepSpec off = parse_sweep(R"({"T": [8, 16], "n": 100})", "t.json");
  const SweepSpec no = parse_sweep(R"({"T": [8, 16], "n": 100, "bounds": false})", "t.json");
  const SweepSpec on = parse_sweep(
      R"({"T": [8, 16], "n": 100, "bounds": {"M": 8, "n": 64}, "grids": [{}, {"sampler": "ddim", "bounds": {"n": 32}},
          {"d": 3, "bounds": false}]})", "t.json");
  ASSERT_EQ(off.runs.size(), 2u);
  ASSERT_EQ(no.runs.size(), 2u);
  ASSERT_EQ(on.runs.size(), 6u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_FALSE(off.runs[i].bounds.on);
    EXPECT_EQ(off.runs[i].canonical().find("bounds"), std::string::npos) << off.runs[i].canonical();
    EXPECT_EQ(no.runs[i].key(), off.runs[i].key());
    EXPECT_TRUE(on.runs[i].bounds.on);
    EXPECT_EQ(on.runs[i].bounds.M, 8);
    EXPECT_EQ(on.runs[i].bounds.n, 64u);
    EXPECT_NE(on.runs[i].key(), off.runs[i].key());  // the same run with bounds is another row
  }
  EXPECT_EQ(on.runs[2].bounds.n, 32u);
  EXPECT_EQ(on.runs[2].bounds.M, kDefaultPathM);
  EXPECT_FALSE(on.runs[4].bounds.on);
}

TEST(SweepParse, ModelFileFamilyTakesItsShapeFromTheFile) {
  const std::string dir = fresh_dir("model");
  write_text(dir + "/m.json", R"({"weights": [0.5, 0.3, 0.2], "means": [[1, 0, 0], [0, 1, 0], [0, 0, 2]], "sd": 1.0})");
  const SweepSpec s = load_sweep_file(write_text(
      dir + "/s.json", R"({"family": {"model": "m.json"}, "d": [2, 8], "K": [5], "sd": [0.5], "T": 16, "n": 100})"));
  ASSERT_EQ(s.runs.size(), 1u);  // d, K and sd come from the file
  EXPECT_EQ(s.runs[0].d, 3);
  EXPECT_EQ(s.runs[0].K, 3);
  EXPECT_EQ(s.runs[0].sd, 1.0);
  EXPECT_EQ(s.runs[0].family, "model:m");
  EXPECT_FALSE(s.runs[0].model_hash.empty());
}
