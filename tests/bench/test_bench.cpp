// The benchmark (host/bench/bench.cpp): a tiny grid runs and its JSON has every field; a
// configuration broken on purpose (through the test seam, host/bench/bench_testing.hpp) is
// reported FAILED and is not timed; bad options are one clear error (the command:
// tests/cli/test_cmd_bench.cpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bench/bench_testing.hpp"
#include "gmmdiff/bench.hpp"
#include "gmmdiff/error.hpp"

using namespace gmmdiff;
using nlohmann::json;

namespace {

BenchOptions tiny() {
  BenchOptions o;
  o.backend = "cpu";
  o.threads = 2;
  o.n = {600};
  o.d = {5};
  o.K = {3};
  o.precision = {Precision::FP32, Precision::FP64};
  o.path = {"auto", "products", "fused"};
  o.T = 4;
  o.repeats = 2;
  o.warmup = 1;
  o.check_rows = 300;
  o.copy_bytes = std::size_t(8) << 20;
  return o;
}

const char* kTopFields[] = {"tool", "version", "date", "host", "backend", "device", "cpu_model", "threads", "model",
                            "schedule", "sampler", "steps_per_pass", "repeats", "warmup", "conventions",
                            "copy_bandwidth_bytes_per_s", "memory_limit_elt_steps_per_s", "flop_limit_flop_per_s",
                            "limit_measurements", "results"};
const char* kResultFields[] = {"n", "d", "K", "precision", "path", "path_taken", "status", "failure", "check",
                               "steps_per_pass", "seconds", "seconds_median", "elt_steps_per_s", "gb_per_s",
                               "gflop_per_s", "pct_memory_limit", "pct_flop_limit", "pct_steal"};
const char* kTimedFields[] = {"seconds_median", "elt_steps_per_s", "gb_per_s", "gflop_per_s", "pct_memory_limit",
                              "pct_flop_limit"};

}  // namespace

TEST(Bench, TinyGridRunsAndJsonHasEveryField) {
  const BenchOptions o = tiny();
  int calls = 0;
  const BenchReport rep = run_bench(o, [&](const BenchReport&, const BenchResult&) { ++calls; });
  ASSERT_EQ(rep.results.size(), 6u);
  EXPECT_EQ(calls, 6);
  EXPECT_GT(rep.copy_bandwidth, 0);
  EXPECT_GT(rep.flop_limit_fp32, 0);
  EXPECT_GT(rep.flop_limit_fp64, 0);
  for (const BenchResult& r : rep.results) {
    SCOPED_TRACE(r.config.path + " " + to_string(r.config.precision));
    EXPECT_TRUE(r.ok) << r.failure;
    EXPECT_EQ(r.seconds.size(), 2u);
    EXPECT_EQ(r.steps, 3);
    EXPECT_LE(r.check_max_abs_diff, r.check_tolerance);
    EXPECT_GT(r.elt_steps_per_s, 0);
    EXPECT_NEAR(r.gflop_per_s, r.elt_steps_per_s * 4 * 3 / 1e9, 1e-9 * r.gflop_per_s);  // 4K FLOP, K = 3
    const double bytes = r.config.precision == Precision::FP32 ? 8 : 16;
    EXPECT_NEAR(r.gb_per_s, r.elt_steps_per_s * bytes / 1e9, 1e-9 * r.gb_per_s);
    if (r.config.path == "products") EXPECT_EQ(r.path_taken, "cpu-blas");
    else EXPECT_TRUE(r.path_taken == "cpu-fused" || r.path_taken == "cpu-fused-rows") << r.path_taken;
  }
  const json j = json::parse(rep.to_json());
  for (const char* f : kTopFields) EXPECT_TRUE(j.contains(f)) << f;
  ASSERT_EQ(j["results"].size(), 6u);
  for (const json& r : j["results"]) {
    for (const char* f : kResultFields) EXPECT_TRUE(r.contains(f)) << f;
    for (const char* f : kTimedFields) EXPECT_TRUE(r[f].is_number()) << f;
    EXPECT_EQ(r["status"], "ok");
    EXPECT_TRUE(r["check"]["max_abs_diff"].is_number());
    // Steal is a share of the timed passes' CPU time where /proc/stat says it, else null (never 0).
    if (!r["pct_steal"].is_null()) {
      EXPECT_GE(r["pct_steal"].get<double>(), 0);
      EXPECT_LE(r["pct_steal"].get<double>(), 100);
    }
  }
  EXPECT_TRUE(j.contains("limits_pct_steal"));
  // The limits: measured before the first row and after each row's timed passes, kept at the best,
  // so no row's roofline is above the one from the final limits.
  int rows32 = 0, rows64 = 0;
  for (const BenchResult& r : rep.results) ++(r.config.precision == Precision::FP32 ? rows32 : rows64);
  EXPECT_EQ(rep.limit_measurements_fp32, 1 + rows32);
  EXPECT_EQ(rep.limit_measurements_fp64, 1 + rows64);
  EXPECT_EQ(j["limit_measurements"]["fp32"], 1 + rows32);
  for (const BenchResult& r : rep.results) {
    const bool f32 = r.config.precision == Precision::FP32;
    const double final_roof = bench_roofline_elt_steps(
        r.config.d, r.config.K, r.config.precision, rep.copy_bandwidth, f32 ? rep.flop_limit_fp32 : rep.flop_limit_fp64,
        f32 ? rep.normal_seconds_fp32 : rep.normal_seconds_fp64, f32 ? rep.weight_seconds_fp32 : rep.weight_seconds_fp64);
    EXPECT_LE(r.roofline_elt_steps_per_s, final_roof * (1 + 1e-12)) << r.config.path << " " << to_string(r.config.precision);
  }
  EXPECT_TRUE(j["flop_limit_flop_per_s"]["fp32"].is_number());
  EXPECT_EQ(j["conventions"]["bytes_per_elt_step"]["fp32"], 8);
  EXPECT_EQ(j["conventions"]["bytes_per_elt_step"]["fp64"], 16);
  EXPECT_FALSE(BenchReport::table_header().empty());
  // The bounds' rows: the path bound and the exact density for the grid's (d, K), with their rate.
  ASSERT_EQ(rep.bounds.size(), 2u);
  for (const BoundsBenchResult& b : rep.bounds) {
    EXPECT_TRUE(b.ok) << b.kind << ": " << b.failure;
    EXPECT_EQ(b.steps, 3) << b.kind;
    EXPECT_EQ(b.rows, o.bounds_outer * o.bounds_M) << b.kind;
    EXPECT_NEAR(b.rate, double(b.rows) * b.steps * 5 / b.seconds, 1e-9 * b.rate) << b.kind;
  }
  ASSERT_EQ(j["bounds"].size(), 2u);
  EXPECT_EQ(j["bounds"][0]["kind"], "path (ddpm)");
  EXPECT_TRUE(j["bounds"][1]["rate"].is_number());
  EXPECT_NE(rep.bounds_table().find("exact (ddim)"), std::string::npos);
}

TEST(Bench, BrokenConfigIsFailedAndNotTimed) {
  BenchOptions o = tiny();
  o.precision = {Precision::FP32};
  o.path = {"products", "fused"};
  // The fused path "computes" a wrong answer: one coordinate off by 0.1.
  const bench_testing::CheckHook break_fused = [](const BenchConfig& c, std::vector<double>& y) {
    if (c.path == "fused") y[7] += 0.1;
  };
  const BenchReport rep = bench_testing::run_bench(o, break_fused);
  ASSERT_EQ(rep.results.size(), 2u);
  const BenchResult& good = rep.results[0];
  const BenchResult& bad = rep.results[1];
  EXPECT_TRUE(good.ok);
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.failure.find("check"), std::string::npos) << bad.failure;
  EXPECT_GE(bad.check_max_abs_diff, 0.09);
  EXPECT_TRUE(bad.seconds.empty());  // not timed
  EXPECT_EQ(bad.elt_steps_per_s, 0);
  EXPECT_NE(rep.table_row(bad).find("FAILED"), std::string::npos);
  const json j = json::parse(rep.to_json());
  const json& jb = j["results"][1];
  EXPECT_EQ(jb["status"], "FAILED");
  EXPECT_TRUE(jb["seconds"].empty());
  for (const char* f : kTimedFields) EXPECT_TRUE(jb[f].is_null()) << f;
  EXPECT_EQ(j["results"][0]["status"], "ok");
}

TEST(Bench, BadOptions) {
  BenchOptions o = tiny();
  o.T = 1;
  EXPECT_THROW(run_bench(o), Error);
  o = tiny();
  o.path = {"warp"};
  EXPECT_THROW(run_bench(o), Error);
  o = tiny();
  o.K.clear();
  EXPECT_THROW(run_bench(o), Error);
}
