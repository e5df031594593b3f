// The claims registry and its built-in sweeps (include/gmmdiff/claims.hpp): every sweep parses
// and expands at every size, each claim's sweep exists, the tiny sizes run (slow label), and the
// issue-11 sweep parameters (eta, error_profile, bias_direction, quantities) keep older keys and
// rows unchanged while reaching the run and its row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/claims.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"

using namespace gmmdiff;

TEST(Claims, EveryClaimHasItsSweepAtEverySizeAndTheyParse) {
  std::set<std::string> names;
  for (const Claim& c : claims()) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name << " twice";
    EXPECT_FALSE(c.paper.empty() || c.statement.empty() || c.measured.empty() || c.claimed.empty()) << c.name;
    EXPECT_TRUE(is_builtin_sweep(c.name)) << c.name;
    EXPECT_EQ(&find_claim(c.name), &c);
  }
  EXPECT_EQ(claims().size(), 6u);
  EXPECT_THROW(find_claim("nope"), Error);
  std::size_t listed = 0;
  for (const BuiltinSweep& b : builtin_sweeps()) {
    ++listed;
    for (const std::string size : {"cpu", "gpu", "tiny"}) {
      if (b.name == "default" && size == "tiny") {
        EXPECT_THROW(builtin_sweep_json(b.name, size), Error);
        continue;
      }
      const SweepSpec spec = parse_sweep(builtin_sweep_json(b.name, size), b.name + " " + size);
      EXPECT_GE(spec.runs.size(), 2u) << b.name << " " << size;
      const std::string want_backend = size == "gpu" ? "cuda" : "cpu";
      for (const RunParams& p : spec.runs) EXPECT_EQ(p.backend, want_backend) << b.name << " " << size;
      if (b.name == "key-lemma" || b.name == "smoothness") {
        for (const RunParams& p : spec.runs) EXPECT_TRUE(p.quantities) << b.name;
      } else {  // the TV and KL claims, and the default: an upper side at every size, or nothing is confirmed
        for (const RunParams& p : spec.runs) EXPECT_TRUE(p.bounds.on) << b.name << " " << size;
      }
    }
  }
  EXPECT_EQ(listed, 7u);
  EXPECT_EQ(builtin_sweep_json("default", "cpu"), default_sweep_json("cpu"));
  EXPECT_EQ(builtin_sweep_json("default", "gpu"), default_sweep_json("cuda"));
  EXPECT_THROW(builtin_sweep_json("theorem1", "huge"), Error);
  EXPECT_THROW(builtin_sweep_json("theorem2", "cpu"), Error);
}

TEST(Claims, NewSweepParametersKeepOlderKeysAndReachTheRuns) {
  const SweepSpec base = parse_sweep(R"({"T": 64, "d": 2})", "base");
  ASSERT_EQ(base.runs.size(), 1u);
  // Where they do not apply they collapse to the defaults: that run has the key of leaving them
  // out. (An axis that applies to no run at all is refused: SweepParse.IssueElevenAxesFollowTheSameRules.)
  const SweepSpec same = parse_sweep(
      R"({"T": 64, "d": 2, "sampler": ["ddpm", "ddim-song"], "eta": 0.5, "score_error": ["none", "bias"], "eps": 0.1,
          "error_profile": "back-loaded", "bias_direction": "means", "quantities": false})",
      "same");
  ASSERT_EQ(same.runs.size(), 4u);
  const auto plain = std::find_if(same.runs.begin(), same.runs.end(), [](const RunParams& p) {
    return p.sampler == SamplerKind::DDPM && p.score_error == ScoreErrorKind::None;
  });
  ASSERT_NE(plain, same.runs.end());
  EXPECT_EQ(plain->key(), base.runs[0].key()) << plain->canonical();
  EXPECT_EQ(base.runs[0].canonical().find(";eta="), std::string::npos);
  const SweepSpec s = parse_sweep(R"({"T": 64, "d": 2, "sampler": ["ddim", "ddim-song"], "eta": [0, 1],
      "score_error": "bias", "eps": 0.1, "error_profile": ["uniform", "front-loaded"], "bias_direction": ["random", [1, 0]]})",
                                  "new");
  // ddim: 2 profiles x 2 directions; ddim-song: 2 etas x 2 x 2
  EXPECT_EQ(s.runs.size(), 12u);
  std::set<std::string> keys;
  for (const RunParams& p : s.runs) keys.insert(p.key());
  EXPECT_EQ(keys.size(), 12u);
  bool saw_vector = false;
  for (const RunParams& p : s.runs) {
    if (p.sampler == SamplerKind::DDIM) {
      EXPECT_EQ(p.eta, 0.0);
    }
    if (p.bias_direction == "1,0") saw_vector = true;
    // the row round trip keeps them
    SweepRow r;
    r.key = p.key();
    r.p = p;
    r.stats.push_back(StatResult{});
    r.stats.back().name = "means[0]";
    r.eps_jacobi = 0.0;
    const SweepRow back = parse_row(row_to_json(r));
    EXPECT_EQ(back.p.key(), p.key()) << p.canonical();
  }
  EXPECT_TRUE(saw_vector);
  for (const char* bad : {R"({"T": 64, "eta": 2})", R"({"T": 64, "error_profile": "file"})",
                          R"({"T": 64, "bias_direction": "up"})", R"({"T": 64, "bias_direction": [0, 0]})",
                          R"({"T": 64, "quantities": 1})"})
    EXPECT_THROW(parse_sweep(bad, "bad"), Error) << bad;
}

TEST(Claims, RowsCarryEpsJacobiAndQuantitiesOnlyWhereTheyApply) {
  SweepRow r;
  r.stats.push_back(StatResult{});
    r.stats.back().name = "means[0]";
  r.p = parse_sweep(R"({"T": 64, "d": 2})", "x").runs[0];
  r.key = r.p.key();
  EXPECT_EQ(row_to_json(r).find("eps_jacobi"), std::string::npos);  // no score error: exactly 0, left out
  EXPECT_EQ(row_to_json(r).find("quantities"), std::string::npos);
  r.p.score_error = ScoreErrorKind::Gaussian;
  r.p.eps = 0.1;
  r.key = r.p.key();  // a row is read back under its params' key only
  r.eps_jacobi = std::nan("");
  const std::string line = row_to_json(r);
  EXPECT_NE(line.find("\"eps_jacobi\":null"), std::string::npos) << line;
  EXPECT_TRUE(std::isnan(parse_row(line).eps_jacobi));
  r.quantities.present = true;
  r.quantities.opnorm_max = 2.5;
  r.quantities.trace_p999 = 1.25;
  const SweepRow back = parse_row(row_to_json(r));
  EXPECT_TRUE(back.quantities.present);
  EXPECT_EQ(back.quantities.opnorm_max, 2.5);
  EXPECT_EQ(back.quantities.trace_p999, 1.25);
}

TEST(Claims, EveryTinyBuiltInSweepRuns) {
  auto be = make_backend("cpu", 2);
  for (const BuiltinSweep& b : builtin_sweeps()) {
    if (b.name == "default") continue;
    const SweepSpec spec = parse_sweep(builtin_sweep_json(b.name, "tiny"), b.name);
    for (const RunParams& p : spec.runs) {
      const SweepRow r = run_one(p, 0, *be);
      ASSERT_TRUE(r.error.empty()) << b.name << " " << p.label() << ": " << r.error;
      ASSERT_FALSE(r.stats.empty()) << b.name << " " << p.label();
      EXPECT_TRUE(std::isfinite(r.tv())) << b.name << " " << p.label();
      EXPECT_EQ(r.quantities.present, p.quantities) << b.name;
      if (p.quantities) {
        EXPECT_GT(r.quantities.opnorm_max, 0.0) << p.label();
        EXPECT_GE(r.quantities.trace_max, r.quantities.trace_mean) << p.label();
        EXPECT_GT(r.quantities.second_moment, 0.0) << p.label();
      }
      // The tiny sweeps with bounds carry the upper side their claims' verdicts need.
      EXPECT_EQ(r.bracket.present, p.bounds.on) << b.name << " " << p.label();
      if (p.bounds.on) {
        EXPECT_TRUE(r.bracket.error.empty()) << p.label() << ": " << r.bracket.error;
        EXPECT_TRUE(std::isfinite(r.bracket.upper_figure())) << p.label();
      }
      if (p.score_error == ScoreErrorKind::Bias) {
        EXPECT_EQ(r.eps_jacobi, 0.0) << p.label();
      }
      if (p.score_error == ScoreErrorKind::Means) {
        EXPECT_GT(r.eps_jacobi, 0.0) << p.label();
      }
    }
  }
}
