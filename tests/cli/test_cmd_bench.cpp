// The `bench` command (host/cli/cmd_bench.cpp): its table and JSON, and a bad --n.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "util/cli_util.hpp"
#include "gmmdiff/bench.hpp"
#include "gmmdiff/error.hpp"

using namespace gmmdiff;
using nlohmann::json;

TEST(BenchCli, PrintsTableAndWritesJson) {
  const std::string out = testing::TempDir() + "/bench_cli.json";
  const auto r = gmmdiff::test::run_cli("bench --backend cpu --n 300 --d 3 --K 2,4 --T 3 --repeats 1 --warmup 0 "
                                        "--path fused,products --json '" + out + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("elt-steps/s"), std::string::npos);
  EXPECT_NE(r.out.find("4K FLOP"), std::string::npos);
  const json j = json::parse(gmmdiff::test::slurp(out));
  EXPECT_EQ(j["results"].size(), 4u);
  const auto bad = gmmdiff::test::run_cli("bench --backend cpu --n 1e5.5");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--n"), std::string::npos) << bad.err;
}
