// `gmmdiff bracket` and `gmmdiff exact` as a user runs them: the JSON keys the issue lists (and
// null where a figure does not apply), the consistency line, and that the figures are the
// library's (bad inputs are rows of docs/reliability.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "util/cli_util.hpp"

using gmmdiff::test::run_cli;
using gmmdiff::test::slurp;

namespace {

std::string tmp(const std::string& name) { return testing::TempDir() + "/bracket_" + std::to_string(::getpid()) + name; }

}  // namespace

TEST(CmdBracket, DdpmJsonHasEveryKeyAndTheBracketHolds) {
  const std::string js = tmp("ddpm.json");
  const auto r = run_cli("bracket --preset two-point --d 2 --radius 2 --sd 0.5 --T 16 --sampler ddpm --n 512 --M 8 "
                         "--n-lower 4000 --threads 2 --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("upper"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("consistent: yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  selection  "), std::string::npos) << r.out;  // the joint lower end
  EXPECT_NE(r.out.find("a lower bound on KL(Y_1 || X_0)"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(slurp(js));
  for (const char* k : {"tv_lower", "tv_lower_ci95", "tv_upper", "tv_upper_mean", "tv_upper_quarter_M", "kl_upper",
                        "M", "tv_exact", "tv_exact_ci95", "kl_exact", "tv_reference", "consistent", "parameters",
                        "tv_x0_x1", "tv_x0_x1_method", "meaning", "kl_lower", "kl_lower_ci95", "kl_lower_stat",
                        "tv_lower_joint_lo"})
    EXPECT_TRUE(j.contains(k)) << k << " missing from " << j.dump();
  EXPECT_EQ(j["M"], 8);
  EXPECT_TRUE(j["tv_exact"].is_null());
  EXPECT_TRUE(j["tv_upper"].is_number());
  EXPECT_TRUE(j["tv_reference"].is_number());
  EXPECT_EQ(j["tv_x0_x1_method"], "Pinsker");
  EXPECT_TRUE(j["consistent"].get<bool>());
  EXPECT_LE(j["tv_reference"].get<double>(), j["tv_upper"].get<double>());
  EXPECT_LE(j["tv_upper_mean"].get<double>(), j["tv_upper"].get<double>());
  EXPECT_EQ(j["parameters"]["T"], 16);
  EXPECT_EQ(j["parameters"]["n"], 512);
  EXPECT_EQ(j["parameters"]["n_lower"], 4000);
}

TEST(CmdBracket, DdimHasTheExactFigureAndNoUpper) {
  const std::string js = tmp("ddim.json");
  const auto r = run_cli("bracket --preset two-point --d 3 --radius 2 --sd 1 --T 16 --sampler ddim --n 4096 "
                         "--n-lower 4000 --threads 2 --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(js));
  EXPECT_TRUE(j["tv_upper"].is_null());
  EXPECT_TRUE(j["M"].is_null());
  ASSERT_TRUE(j["tv_exact"].is_number());
  const double lo = j["tv_exact_ci95"][0], hi = j["tv_exact_ci95"][1], ref = j["tv_reference"];
  EXPECT_LE(lo, ref) << j.dump();
  EXPECT_GE(hi, ref) << j.dump();
  EXPECT_TRUE(j["kl_exact"].is_number());
  // KL(Y || X_0) from below: the plug-in KL's CI starts below the exact figure's CI end.
  EXPECT_LE(j["kl_lower_ci95"][0].get<double>(), j["kl_exact_ci95"][1].get<double>()) << j.dump();
  EXPECT_LE(j["tv_lower_joint_lo"].get<double>(), j["tv_lower_ci95"][0].get<double>()) << j.dump();
}

TEST(CmdBracket, UnreducibleModelsHaveNoReference) {
  const std::string js = tmp("sphere.json");
  const auto r = run_cli("bracket --preset random-sphere --d 3 --K 3 --T 8 --n 256 --M 4 --n-lower 2000 --threads 2 "
                         "--json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(js));
  EXPECT_TRUE(j["tv_reference"].is_null());
  EXPECT_FALSE(j["reducible"].get<bool>());
  EXPECT_NE(j["reducible_reason"].get<std::string>().find("off the line"), std::string::npos);
}

// ddim-song is stochastic for eta > 0 (the path bound, continuations M) and deterministic for
// eta = 0 (the exact density); the sampler label, eps_Jacobi and the parameters say which.
TEST(CmdBracket, DdimSongTakesThePathBoundForEtaAboveZeroAndTheExactDensityAtZero) {
  const std::string js = tmp("song.json");
  // cosine: lcw's first steps at small T have 1 - abar_t = 0, where ddim-song has no noise.
  auto r = run_cli("bracket --preset two-point --d 2 --radius 2 --sd 0.5 --schedule cosine --T 32 --sampler ddim-song "
                   "--eta 0.5 --n 256 --M 4 --n-lower 2000 --threads 2 --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ddim-song/eta=0.5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eps_Jacobi 0 (exact)"), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(slurp(js));
  EXPECT_TRUE(j["tv_upper"].is_number()) << j.dump();
  EXPECT_TRUE(j["tv_exact"].is_null());
  EXPECT_EQ(j["M"], 4);
  EXPECT_EQ(j["parameters"]["eta"], 0.5);
  EXPECT_TRUE(j["parameters"]["variance"].is_null());
  EXPECT_EQ(j["parameters"]["error_profile"], "uniform");
  EXPECT_EQ(j["parameters"]["bias_direction"], "random");
  EXPECT_EQ(j["eps_jacobi"], 0.0);
  EXPECT_EQ(j["eps_jacobi_se"], 0.0);
  EXPECT_TRUE(j["eps_jacobi_defined"].get<bool>());
  EXPECT_TRUE(j["consistent"].get<bool>()) << j.dump();

  r = run_cli("bracket --preset two-point --d 2 --radius 2 --sd 0.5 --T 16 --sampler ddim-song --n 2048 "
              "--n-lower 2000 --threads 2 --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(slurp(js));
  EXPECT_TRUE(j["tv_upper"].is_null());
  EXPECT_TRUE(j["tv_exact"].is_number()) << j.dump();
  EXPECT_EQ(j["parameters"]["eta"], 0.0);
  const double lo = j["tv_exact_ci95"][0], hi = j["tv_exact_ci95"][1], ref = j["tv_reference"];
  EXPECT_LE(lo, ref) << j.dump();
  EXPECT_GE(hi, ref) << j.dump();

  // --M is for the stochastic samplers, --variance for ddpm, --eta for ddim-song.
  r = run_cli("bracket --preset two-point --d 2 --T 8 --sampler ddim-song --M 4");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--M applies to the stochastic samplers only"), std::string::npos) << r.err;
  r = run_cli("bracket --preset two-point --d 2 --T 8 --sampler ddim-song --eta 0.5 --variance beta");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("ddim-song's noise is set by --eta"), std::string::npos) << r.err;
  r = run_cli("bracket --preset two-point --d 2 --T 8 --eta 0.5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--eta applies to ddim-song only"), std::string::npos) << r.err;
}

// A score error with a profile: the header names it, eps_Jacobi is measured (an estimate with its
// standard error) for weights (gaussian's undefined eps_Jacobi: test_cmd_claims.cpp).
TEST(CmdBracket, ScoreErrorProfileAndEpsJacobi) {
  const std::string js = tmp("profile.json");
  const auto r = run_cli("bracket --preset random-sphere --d 3 --K 3 --T 12 --n 256 --M 4 --n-lower 2000 --threads 2 "
                         "--stat means,radial --bootstrap 50 --score-error weights --eps 0.4 --error-profile front-loaded "
                         "--json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("score error weights eps 0.4 (front-loaded)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eps_Jacobi "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" (se "), std::string::npos) << r.out;  // an estimate, with its standard error
  const auto j = nlohmann::json::parse(slurp(js));
  EXPECT_EQ(j["parameters"]["error_profile"], "front-loaded");
  ASSERT_TRUE(j["eps_jacobi"].is_number()) << j.dump();
  EXPECT_GT(j["eps_jacobi"].get<double>(), 0);
  EXPECT_GT(j["eps_jacobi_se"].get<double>(), 0);
  EXPECT_TRUE(j["eps_jacobi_defined"].get<bool>());
}

TEST(CmdExact, TableAndJsonPerDAndT) {
  const std::string js = tmp("exact.json");
  const auto r = run_cli("exact --preset two-point --d 1,4 --radius 2 --sd 0.5 --T 16,32 --json '" + js + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(slurp(js));
  ASSERT_EQ(j["rows"].size(), 4u);
  for (const auto& row : j["rows"]) {
    EXPECT_TRUE(row["converged"].get<bool>()) << row.dump();
    EXPECT_LT(row["change"].get<double>(), 1e-6) << row.dump();
    EXPECT_GT(row["tv_reference"].get<double>(), 0.0) << row.dump();
  }
  EXPECT_EQ(j["rows"][0]["d"], 1);
  EXPECT_EQ(j["rows"][1]["T"], 32);
  EXPECT_NE(r.out.find("converged"), std::string::npos);
}
