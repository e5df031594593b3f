// `gmmdiff inspect`, `gmmdiff claims`, `gmmdiff sweep --list` and a built-in sweep by name, and the
// issue-11 options of `sample` and `bracket` (eps_Jacobi, profiles, directions, ddim-song), as a
// user runs them: the JSON keys the issue lists, the lines that name the claims, bad values as one
// line and exit 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/cli_util.hpp"

using gmmdiff::test::run_cli;
using gmmdiff::test::slurp;

namespace {

std::string tmp(const std::string& name) { return testing::TempDir() + "/claims_" + std::to_string(::getpid()) + name; }

}  // namespace

TEST(CmdInspect, JsonHasEveryKeyPerStepForBothPopulations) {
  const std::string js = tmp("q.json");
  const auto r = run_cli("inspect --preset random-sphere --d 4 --K 8 --T 64 --n 256 --steps 64,32,8 --threads 2 "
                         "--json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("log(KT)"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(slurp(js));
  ASSERT_EQ(j["rows"].size(), 3u) << j.dump();
  EXPECT_NEAR(j["log_KT"].get<double>(), std::log(8.0 * 64), 1e-12);
  for (const auto& row : j["rows"]) {
    for (const char* k : {"t", "abar", "second_moment_exact"}) EXPECT_TRUE(row.contains(k)) << k;
    for (const char* pop : {"forward", "sampler"}) {
      ASSERT_TRUE(row[pop].is_object()) << pop << " " << row.dump();
      for (const char* k : {"trace_IJ_mean", "trace_IJ_p999", "jac_opnorm_mean", "jac_opnorm_max", "second_moment"})
        EXPECT_TRUE(row[pop][k].is_number()) << pop << "." << k << " " << row.dump();
      EXPECT_LE(row[pop]["trace_IJ_mean"].get<double>(), row[pop]["trace_IJ_max"].get<double>());
    }
  }
  EXPECT_EQ(j["rows"][0]["t"], 64);  // the sampler's order: t decreasing
}

TEST(CmdInspect, NoSamplerLeavesTheSamplerNullAndBadStepsAreErrors) {
  const std::string js = tmp("q2.json");
  const auto r = run_cli("inspect --preset two-point --d 2 --T 32 --n 64 --no-sampler --threads 1 --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(js));
  for (const auto& row : j["rows"]) EXPECT_TRUE(row["sampler"].is_null());
  const auto bad = run_cli("inspect --preset two-point --d 2 --T 32 --n 64 --steps 40 --json '" + tmp("q3.json") + "'");
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(tmp("q3.json")));
  EXPECT_NE(bad.err.find("outside"), std::string::npos) << bad.err;
}

TEST(CmdClaims, ListsEveryClaimWithItsSweepAndTheSweepListNamesThem) {
  const auto r = run_cli("claims");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto l = run_cli("sweep --list");
  ASSERT_EQ(l.code, 0) << l.err;
  for (const char* c : {"theorem1", "key-lemma", "smoothness", "kl-rate", "ddim-vs-ddpm", "robustness"}) {
    EXPECT_NE(r.out.find(std::string("gmmdiff sweep ") + c), std::string::npos) << c << "\n" << r.out;
    EXPECT_NE(l.out.find(c), std::string::npos) << c << "\n" << l.out;
  }
  EXPECT_NE(l.out.find("default"), std::string::npos) << l.out;
  const auto one = run_cli("claims kl-rate");
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_NE(one.out.find("2510.27562"), std::string::npos) << one.out;
  const auto js = run_cli("claims --json");
  ASSERT_EQ(js.code, 0) << js.err;
  EXPECT_EQ(nlohmann::json::parse(js.out).size(), 6u);
  const auto bad = run_cli("claims no-such-claim");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("theorem1"), std::string::npos) << bad.err;
}

TEST(CmdClaims, ABuiltInSweepRunsByNameAtTheTinySize) {
  const std::string out = tmp("smooth");
  const auto r = run_cli("sweep smoothness --size tiny --out '" + out + "' --no-report --threads 2");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(out + "/results.jsonl");
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j["quantities"].is_object()) << line;
    EXPECT_GT(j["quantities"]["jac_opnorm_max"].get<double>(), 0.0);
    ++rows;
  }
  EXPECT_EQ(rows, 3);
  // Its report judges the claim by the claim's rule and writes claim.md / claim.json; the main
  // job's table reads the same directory.
  const auto rep = run_cli("report '" + out + "' --no-plots");
  ASSERT_EQ(rep.code, 0) << rep.err;
  EXPECT_NE(rep.out.find("claim smoothness: "), std::string::npos) << rep.out;
  EXPECT_NE(rep.out.find("K-exponent of max ||J_t||_op"), std::string::npos) << rep.out;
  const auto cj = nlohmann::json::parse(slurp(out + "/claim.json"));
  EXPECT_EQ(cj["claim"], "smoothness");
  ASSERT_EQ(cj["figures"].size(), 2u);
  // ||J_t||_op over draws is a lower side only: it can never confirm.
  EXPECT_NE(cj["figures"][0]["verdict"], "confirmed");
  EXPECT_EQ(cj["figures"][0]["upper_from"], "");
  // E|X_t|^2 = radius^2 + d for every K (the means lie on the sphere): exact, K-free, confirmed.
  EXPECT_EQ(cj["figures"][1]["verdict"], "confirmed") << cj.dump(2);
  const auto table = run_cli("claims --verdicts '" + out + "'");
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_EQ(table.out.rfind("claim | measured [95% CI] | claimed | verdict | details\n", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("smoothness | K-exponent of max_t E|X_t|^2: "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(out + "/claim.md"), std::string::npos) << table.out;
  const auto notclaim = run_cli("claims --verdicts '" + tmp("nowhere") + "'");
  EXPECT_EQ(notclaim.code, 2) << notclaim.err;
  const auto p = run_cli("sweep kl-rate --size tiny --print-default");
  ASSERT_EQ(p.code, 0) << p.err;
  EXPECT_EQ(nlohmann::json::parse(p.out)["name"], "kl-rate-tiny");
  const auto bad = run_cli("sweep robustness --size huge --out '" + tmp("bad") + "'");
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(tmp("bad")));
}

TEST(CmdSample, EpsJacobiBesideEpsScoreAndUndefinedForGaussian) {
  const auto s = run_cli("sample --preset two-point --d 2 --T 32 --n 512 --score-error scale --eps 0.2 "
                         "--error-profile front-loaded --threads 1 --out '" + tmp("s.npy") + "'");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.err.find("eps_Jacobi="), std::string::npos) << s.err;
  const auto g = run_cli("sample --preset two-point --d 2 --T 32 --n 512 --score-error gaussian --eps 0.2 "
                         "--threads 1 --out '" + tmp("g.npy") + "'");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.err.find("eps_Jacobi undefined"), std::string::npos) << g.err;
  const auto b = run_cli("sample --preset two-point --d 2 --T 32 --n 512 --score-error bias --eps 0.2 "
                         "--bias-direction means --threads 1 --out '" + tmp("b.npy") + "'");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.err.find("eps_Jacobi=0"), std::string::npos) << b.err;
}

TEST(CmdSample, BadEtaProfileAndDirectionAreOneLineExitTwo) {
  const std::string out = tmp("bad.npy");
  const std::string factors = tmp("f.txt");
  { std::ofstream(factors) << "1 1 1\n"; }
  for (const std::string& args : std::vector<std::string>{"--sampler ddim-song --eta 1.5", "--sampler ddpm --eta 0.5", "--error-profile sideways",
        "--score-error bias --eps 0.1 --bias-direction 1,2,3", "--score-error bias --eps 0.1 --bias-direction 0,0",
        "--score-error scale --eps 0.1 --error-factors '" + factors + "'", "--error-profile file"}) {
    const auto r = run_cli("sample --preset two-point --d 2 --T 32 --n 64 " + args + " --out '" + out + "'");
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
}

TEST(CmdBracket, DdimSongEtaZeroGetsTheExactDensityAndEtaOneThePathBound) {
  const std::string js0 = tmp("b0.json"), js1 = tmp("b1.json");
  const auto r0 = run_cli("bracket --preset two-point --d 2 --radius 2 --T 16 --sampler ddim-song --eta 0 --n 2048 "
                          "--n-lower 2000 --threads 2 --score-error means --eps 0.1 --json '" + js0 + "'");
  ASSERT_EQ(r0.code, 0) << r0.err;
  const auto j0 = nlohmann::json::parse(slurp(js0));
  EXPECT_TRUE(j0["tv_exact"].is_number()) << j0.dump();
  EXPECT_TRUE(j0["tv_upper"].is_null());
  EXPECT_TRUE(j0["eps_jacobi"].is_number()) << j0.dump();
  EXPECT_TRUE(j0["eps_jacobi_defined"].get<bool>());
  const auto r1 = run_cli("bracket --preset two-point --d 2 --radius 2 --T 16 --sampler ddim-song --eta 1 --n 256 "
                          "--M 8 --n-lower 2000 --threads 2 --score-error gaussian --eps 0.1 --json '" + js1 + "'");
  ASSERT_EQ(r1.code, 0) << r1.err;
  const auto j1 = nlohmann::json::parse(slurp(js1));
  EXPECT_TRUE(j1["tv_upper"].is_number()) << j1.dump();
  EXPECT_TRUE(j1["eps_jacobi"].is_null());
  EXPECT_FALSE(j1["eps_jacobi_defined"].get<bool>());
  EXPECT_NE(r1.out.find("eps_Jacobi undefined"), std::string::npos) << r1.out;
}
