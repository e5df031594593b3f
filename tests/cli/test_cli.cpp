// The command line: a real sampling run, `info`, and every bad input of issue 2 gets one clear line
// on stderr, a non-zero exit, and no output file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "util/cli_util.hpp"
#include "gmmdiff/npy.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;

namespace {
std::string tmp(const std::string& name) { return testing::TempDir() + "/" + name; }
std::string write(const std::string& name, const std::string& text) {
  std::ofstream(tmp(name)) << text;
  return tmp(name);
}
int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}
}  // namespace

TEST(Cli, SampleWritesNpyAndSummary) {
  const std::string out = tmp("y.npy");
  std::remove(out.c_str());
  const CliResult r = run_cli("sample --preset two-point --d 4 --radius 2 --n 1000 --T 200 --seed 3 --out " + out +
                              " --snapshot 200,8 --backend cpu");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("elt-steps/s"), std::string::npos) << r.err;
  const NpyArray a = read_npy(out);
  ASSERT_EQ(a.shape, (std::vector<uint64_t>{1000, 4}));
  EXPECT_EQ(a.dtype, "<f4");
  // two-point at +-2 e_1: the first coordinate is bimodal, its mean square near 4 + 1.
  double ms = 0;
  for (int i = 0; i < 1000; ++i) ms += a.data[i * 4] * a.data[i * 4];
  EXPECT_NEAR(ms / 1000, 5.0, 0.6);
  EXPECT_EQ(read_npy(tmp("y.t200.npy")).shape[0], 1000u);
  EXPECT_EQ(read_npy(tmp("y.t8.npy")).shape[1], 4u);
  // fp64 and the same seed: the same particles up to float rounding
  const CliResult r64 = run_cli("sample --preset two-point --d 4 --radius 2 --n 1000 --T 200 --seed 3 --precision fp64 --out " +
                                tmp("y64.npy") + " -q");
  ASSERT_EQ(r64.code, 0) << r64.err;
  EXPECT_EQ(r64.err, "");
  const NpyArray b = read_npy(tmp("y64.npy"));
  EXPECT_EQ(b.dtype, "<f8");
  double maxdiff = 0;
  for (std::size_t i = 0; i < a.data.size(); ++i) maxdiff = std::max(maxdiff, std::fabs(a.data[i] - b.data[i]));
  EXPECT_LT(maxdiff, 1e-3);
}

TEST(Cli, InfoReportsBuild) {
  const CliResult r = run_cli("info");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("CUDA backend"), std::string::npos);
  EXPECT_NE(r.out.find("fp64"), std::string::npos);
  const CliResult j = run_cli("info --json");
  ASSERT_EQ(j.code, 0);
  EXPECT_NE(j.out.find("\"backends\""), std::string::npos);
}

TEST(Cli, BadInputIsOneLineAndNoFile) {
  std::vector<double> nan_means = {0.0, NAN};
  write_npy(tmp("nan_means.npy"), nan_means.data(), 1, 2);
  std::ofstream(tmp("trunc.npy")) << "\x93NUMPY\x01\x00";
  struct Case { std::string args, needle; int code; };
  const std::string common = " --n 100 --T 10";
  std::vector<Case> cases = {
      {"--model " + write("malformed.json", "{\"weights\": [1,"), "malformed JSON", 2},
      {"--model " + write("nomeans.json", R"({"weights": [1]})"), "means", 2},
      {"--model " + write("kmis.json", R"({"weights": [0.5, 0.5], "means": [[0, 1]]})"), "weights has 2", 2},
      {"--model " + write("neg.json", R"({"weights": [1.5, -0.5], "means": [[0], [1]]})"), "positive", 2},
      {"--model " + write("sd0.json", R"({"weights": [1], "means": [[0]], "sd": 0})"), "sd[0]", 2},
      {"--model " + write("sum.json", R"({"weights": [0.3, 0.3], "means": [[0], [1]]})"), "--normalize-weights", 2},
      {"--model " + write("nan.json", R"({"weights": [1], "means_npy": "nan_means.npy"})"), "finite", 2},
      {"--model " + write("trunc.json", R"({"weights": [1], "means_npy": "trunc.npy"})"), "trunc.npy", 2},
      {"--model " + write("unread.json", R"({"weights": [1], "means_npy": "absent.npy"})"), "absent.npy", 2},
      {"--preset two-point --T 0", "T", 2},
      {"--preset two-point --n 0", "n", 2},
      {"--preset two-point --n -3", "--n", 2},
      {"--preset two-point --schedule quadratic", "unknown schedule", 2},
      {"--preset two-point --sampler euler", "unknown sampler", 2},
      {"--preset two-point --variance big", "unknown variance", 2},
      {"--preset moon", "unknown preset", 2},
      {"--preset simplex --d 2 --K 5", "K <= d + 1", 2},
      {"--preset two-point --sd -1", "sd", 2},
      {"--preset two-point --weights 0.2,0.2", "--normalize-weights", 2},
      {"--preset two-point --score-error wobble --eps 1", "unknown score error", 2},
      {"--preset two-point --precision fp16", "precision", 2},
      {"--preset gaussian --d 60000000", "does not fit", 3},
      {"--preset two-point --threads -2", "threads", 2},
      {"", "--model", 2},
  };
  cases.push_back({"--preset two-point --backend tpu", "unknown backend", 2});
  for (const auto& c : cases) {
    const std::string out = tmp("never.npy");
    std::remove(out.c_str());
    const CliResult r = run_cli("sample " + std::string(common) + " " + c.args + " --out " + out);
    SCOPED_TRACE("args: " + c.args + "\nstderr: " + r.err);
    EXPECT_EQ(r.code, c.code);
    EXPECT_EQ(lines(r.err), 1);
    EXPECT_NE(r.err.find(c.needle), std::string::npos);
    EXPECT_FALSE(exists(out));
  }
  // with --normalize-weights the same weights are accepted
  const CliResult ok = run_cli("sample --preset two-point --weights 1,3 --normalize-weights --n 10 --T 4 -q --out " + tmp("norm.npy"));
  EXPECT_EQ(ok.code, 0) << ok.err;
}

TEST(Cli, CudaWithoutDeviceIsAClearError) {
  const CliResult info = run_cli("info --json");
  if (info.out.find("\"cuda_devices\": []") == std::string::npos) GTEST_SKIP() << "a CUDA device is present";
  const std::string out = tmp("cuda.npy");
  const CliResult r = run_cli("sample --preset two-point --n 10 --T 4 --backend cuda --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cuda"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_FALSE(exists(out));
}

TEST(Cli, VersionNamesTheCommitOfAGitBuild) {
  const CliResult r = run_cli("--version");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("0.", 0), 0u) << r.out;
  if (!std::ifstream(std::string(GMMDIFF_SOURCE_DIR) + "/.git/HEAD").good())
    GTEST_SKIP() << "not built from a git checkout: the version has no commit";
  // 0.1.0+g<12 hex>[.dirty]
  const auto plus = r.out.find("+g");
  ASSERT_NE(plus, std::string::npos) << r.out;
  const std::string hex = r.out.substr(plus + 2, 12);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << r.out;
  const CliResult j = run_cli("info --json");
  EXPECT_NE(j.out.find("\"commit\": \"" + hex), std::string::npos) << j.out;
}
