// parse_sweep (host/sweep/parse.cpp, with parse_context.cpp and axes.cpp): the grids, model-file
// families, and bad input as one clear line naming the file, the key and what is allowed.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/sweep.hpp"
#include "sweep/run_params.hpp"
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

Mixture build_target_of(const RunParams& p) { return build_target(p); }

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
      {R"({"T": 8,})", "malformed JSON at byte"},
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
  // d, K and sd apply to the preset (two runs) but not to the model file (one run: they come from
  // the file). With the model file alone they would apply to no run: AnAxisThatAppliesToNoRunIsRefused.
  const SweepSpec s = load_sweep_file(write_text(dir + "/s.json", R"({"family": [{"model": "m.json"}, "random-sphere"],
      "d": [2, 8], "K": [5], "sd": [0.5], "T": 16, "n": 100})"));
  ASSERT_EQ(s.runs.size(), 3u);
  EXPECT_EQ(s.runs[0].d, 3);
  EXPECT_EQ(s.runs[0].K, 3);
  EXPECT_EQ(s.runs[0].sd, 1.0);
  EXPECT_EQ(s.runs[0].family, "model:m");
  EXPECT_FALSE(s.runs[0].model_hash.empty());
}

// Issue 15: a key given twice in a sweep (at any depth) is refused with its name and place.
TEST(SweepParse, DuplicateKeysAreRefused) {
  EXPECT_NE(error_of(R"({"T": 8, "d": 2, "T": 16})").find("t.json: duplicate key \"T\""), std::string::npos)
      << error_of(R"({"T": 8, "d": 2, "T": 16})");
  const std::string e = error_of(R"({"grids": [{"T": 8}, {"T": 16, "schedule": {"name": "lcw", "c0": 2, "c0": 3}}]})");
  EXPECT_NE(e.find("duplicate key \"c0\" in /grids/1/schedule"), std::string::npos) << e;
}

// Issue 15, axes that do not apply: a schedule file fixes T, so its runs record the file's length
// (collapsing a T axis that other schedules use), a sweep of files alone needs no T, and a T axis
// that applies to no run is refused; the same for every axis that can apply to no run.
TEST(SweepParse, AScheduleFileFixesTAndTheRowsSaySo) {
  const std::string dir = fresh_dir("sched_T");
  write_text(dir + "/five.json", R"({"alpha": [0.99, 0.9, 0.8, 0.7, 0.6]})");
  const SweepSpec files = parse_sweep(R"({"n": 100, "schedule": {"file": "five.json"}})", dir + "/s.json", dir);
  ASSERT_EQ(files.runs.size(), 1u);
  EXPECT_EQ(files.runs[0].T, 5);
  const SweepSpec mixed = parse_sweep(R"({"n": 100, "T": [32, 64], "schedule": ["lcw", {"file": "five.json"}]})",
                                      dir + "/s.json", dir);
  ASSERT_EQ(mixed.runs.size(), 3u);  // lcw at 32 and 64, the file once (not labelled T = 32 and T = 64)
  EXPECT_EQ(mixed.runs[2].schedule, "file");
  EXPECT_EQ(mixed.runs[2].T, 5);
  EXPECT_NE(mixed.runs[2].label().find("T=5 "), std::string::npos) << mixed.runs[2].label();
  try {
    parse_sweep(R"({"n": 100, "T": [32, 64, 128], "schedule": {"file": "five.json"}})", dir + "/s.json", dir);
    ADD_FAILURE() << "a T axis with only a schedule file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"T\": applies to no run of this sweep: every schedule is a file"),
              std::string::npos)
        << e.what();
  }
}

TEST(SweepParse, AnAxisThatAppliesToNoRunIsRefused) {
  struct Case {
    const char* json;
    const char* says;
  };
  const Case cases[] = {
      {R"({"T": 8, "eps": [0.1, 0.2]})", "\"eps\": applies to no run of this sweep: every run has score_error \"none\""},
      {R"({"T": 8, "eps_samples": 64})", "\"eps_samples\": applies to no run"},
      {R"({"T": 8, "sampler": "ddim", "variance": "posterior"})", "\"variance\": applies to no run"},
      {R"({"T": 8, "family": "two-point", "model_seed": [1, 2]})", "\"model_seed\": applies to no run"},
      {R"({"T": 8, "family": ["two-point", "gaussian"], "K": 4})", "\"K\": applies to no run"},
      {R"({"T": 8, "schedule": {"name": "linear", "c0": 3}})", "\"schedule.c0\": does not apply to the schedule \"linear\""},
      {R"({"T": 8, "schedule": {"name": "cosine", "kind": "abar"}})", "\"schedule.kind\": does not apply"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.json);
    EXPECT_NE(e.find(c.says), std::string::npos) << c.json << "\n" << e;
  }
  // An axis that applies to some runs collapses for the others (eps for score_error none, here),
  // also when it is given at the top level and used by one grid only.
  EXPECT_EQ(error_of(R"({"T": 8, "score_error": ["none", "bias"], "eps": [0.1, 0.2]})"), "");
  EXPECT_EQ(error_of(R"({"eps": 0.1, "grids": [{"T": 8}, {"T": 8, "score_error": "means"}]})"), "");
  EXPECT_EQ(error_of(R"({"T": 8, "family": ["two-point", "random-sphere"], "K": 4, "model_seed": 3})"), "");
  // A negative scale error is legal (the score times 1 + eps), as for `gmmdiff sample`.
  EXPECT_EQ(error_of(R"({"T": 8, "score_error": "scale", "eps": -0.5})"), "");
  EXPECT_NE(error_of(R"({"T": 8, "score_error": "means", "eps": 1e300})").find("whose square overflows"),
            std::string::npos);
}

TEST(SweepParse, ModelFileAxesThatApplyToNoRunAreRefused) {
  const std::string dir = fresh_dir("model_axes");
  write_text(dir + "/m.json", R"({"weights": [0.5, 0.5], "means": [[1, 0], [0, 1]]})");
  try {
    load_sweep_file(write_text(dir + "/s.json", R"({"family": {"model": "m.json"}, "d": [2, 8], "T": 16})"));
    ADD_FAILURE() << "d with a model file only was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"d\": applies to no run of this sweep: every family is a model file"),
              std::string::npos)
        << e.what();
  }
}

// Issue 15: every input file is read once, when the sweep is parsed, and keys its runs by its
// contents: runs use the copy they were planned with, whatever happens to the file later.
TEST(SweepParse, InputFilesAreReadOnceAndKeyedByTheirContents) {
  const std::string dir = fresh_dir("inputs");
  const std::string model = write_text(dir + "/m.json", R"({"weights": [0.5, 0.5], "means": [[1, 0], [0, 1]]})");
  write_text(dir + "/sched.json", R"({"alpha": [0.99, 0.9, 0.8, 0.7]})");
  const std::vector<double> dirs = {1, 1};
  write_npy(dir + "/dirs.npy", dirs.data(), 1, 2);
  const std::string text = R"({"family": {"model": "m.json"}, "schedule": {"file": "sched.json"}, "n": 100,
                               "tv": {"stats": "file:dirs.npy,radial"}})";
  const SweepSpec a = parse_sweep(text, dir + "/s.json", dir);  // the direction file relative to the sweep
  ASSERT_EQ(a.runs.size(), 1u);
  const RunParams& p = a.runs[0];
  ASSERT_TRUE(p.model && p.schedule_loaded);
  EXPECT_FALSE(p.schedule_hash.empty());
  EXPECT_FALSE(p.tv_files_hash.empty());
  ASSERT_EQ(p.tv.files.count("dirs.npy"), 1u);

  // Edits after parsing change nothing for the runs already planned.
  write_text(model, R"({"weights": [0.5, 0.5], "means": [[3, 0], [0, 3]]})");
  EXPECT_EQ(build_target_of(p).mean(0)[0], 1.0);
  // ...and each file's contents key a new parse's runs.
  const SweepSpec b = parse_sweep(text, dir + "/s.json", dir);
  EXPECT_NE(b.runs[0].key(), p.key());
  write_text(model, R"({"weights": [0.5, 0.5], "means": [[1, 0], [0, 1]]})");
  EXPECT_EQ(parse_sweep(text, dir + "/s.json", dir).runs[0].key(), p.key());
  write_text(dir + "/sched.json", R"({"alpha": [0.99, 0.9, 0.8, 0.6]})");
  EXPECT_NE(parse_sweep(text, dir + "/s.json", dir).runs[0].key(), p.key());
  write_text(dir + "/sched.json", R"({"alpha": [0.99, 0.9, 0.8, 0.7]})");
  const std::vector<double> other = {1, -1};
  write_npy(dir + "/dirs.npy", other.data(), 1, 2);
  EXPECT_NE(parse_sweep(text, dir + "/s.json", dir).runs[0].key(), p.key());

  // A run without the loaded copy refuses a file whose contents are not its key's.
  RunParams stale = p;
  stale.model = nullptr;
  write_text(model, R"({"weights": [0.5, 0.5], "means": [[3, 0], [0, 3]]})");
  EXPECT_THROW(build_target_of(stale), Error);
}

// Issue 15's rules for issue 11's axes: one that applies to no run is refused (eta without
// ddim-song, an error profile or a bias direction without their score error), a bias vector is
// checked against each run's d before anything runs, and a score error is checked with its
// profile over the run's steps (a negative scale eps that the profile's largest factor takes past
// -1; means moved beyond what a double holds at the step where the factor is largest).
TEST(SweepParse, IssueElevenAxesFollowTheSameRules) {
  struct Case {
    const char* json;
    const char* says;
  };
  const Case cases[] = {
      {R"({"T": 8, "eta": [0.5, 1]})", "\"eta\": applies to no run of this sweep: no run uses the ddim-song sampler"},
      {R"({"T": 8, "error_profile": "front-loaded"})", "\"error_profile\": applies to no run"},
      {R"({"T": 8, "score_error": "scale", "eps": 0.1, "bias_direction": "means"})",
       "\"bias_direction\": applies to no run of this sweep: no run has score_error \"bias\""},
      {R"({"T": 8, "d": [2, 3], "score_error": "bias", "eps": 0.1, "bias_direction": [1, 0]})",
       "\"bias_direction\": a vector of 2 values for d = 3"},
      {R"({"T": 8, "score_error": "scale", "eps": -0.8, "error_profile": "front-loaded"})",
       "for score error scale with the front-loaded profile"},
      {R"({"T": 8, "score_error": "means", "eps": 1.2e154, "error_profile": "back-loaded"})",
       "whose square overflows"},
      {R"({"T": 8, "family": "gaussian", "radius": 0, "score_error": "bias", "eps": 0.1, "bias_direction": "means"})",
       "every mean is 0"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.json);
    EXPECT_NE(e.find(c.says), std::string::npos) << c.json << "\n" << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  // Where they apply to some runs, they collapse for the others and the sweep parses.
  EXPECT_EQ(error_of(R"({"T": 8, "sampler": ["ddpm", "ddim-song"], "eta": [0.5, 1]})"), "");
  EXPECT_EQ(error_of(R"({"T": 8, "score_error": ["none", "bias"], "eps": 0.1, "error_profile": "front-loaded",
                         "bias_direction": [1e308, 1e308]})"),
            "");
  EXPECT_EQ(error_of(R"({"T": 8, "score_error": "scale", "eps": -0.8})"), "");
  EXPECT_EQ(error_of(R"({"T": 8, "score_error": "scale", "eps": -0.7, "error_profile": "front-loaded"})"), "");
}

// The same eps without the profile: uniform keeps eps itself, whose square a double holds here.
TEST(SweepParse, TheProfileDecidesWhetherMeansOverflow) {
  EXPECT_EQ(error_of(R"({"T": 8, "score_error": "means", "eps": 1.2e154})"), "");
}
