// The `gmmdiff` command under `mpirun -np 1, 2, 3` (label mpi; docs/scale.md): a sample's .npy is
// byte for byte the one-process file; tv reports, bracket figures and sweep rows hold the
// one-process figures; a rank killed mid-sweep, then a resume, leaves every run exactly once; a
// bad input is reported once with the usual exit code; a rank that fails ends the job with its
// message and no file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "gmmdiff/sweep.hpp"
#include "util/cli_util.hpp"
#include "util/mpi_util.hpp"
#include "util/sweep_util.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;
namespace fs = std::filesystem;

namespace {

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// The names in dir (files left behind, temporaries included).
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

}  // namespace

TEST(MpiCli, SampleWritesTheOneProcessFileByteForByte) {
  const std::string dir = fresh_dir("mpi_sample");
  // n = 3001 splits unevenly over 2 and 3 ranks; a snapshot file is written the same way.
  const std::string args = "sample --preset random-sphere --d 5 --K 4 --n 3001 --T 24 --seed 3 --backend cpu "
                           "--snapshot 12 -q --out ";
  const CliResult one = run_cli(args + q(dir + "/one.npy"));
  ASSERT_EQ(one.code, 0) << one.err;
  for (int np : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << "mpirun -np " << np);
    const std::string out = dir + "/np" + std::to_string(np) + ".npy";
    const CliResult r = run_shell(mpirun_cli(np, args + q(out)));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(bytes_of(out) == bytes_of(dir + "/one.npy")) << out << " differs from the one-process file";
    EXPECT_TRUE(bytes_of(dir + "/np" + std::to_string(np) + ".t12.npy") == bytes_of(dir + "/one.t12.npy"))
        << "the snapshot differs";
  }
  // float64 and ddim, over 3 ranks.
  const std::string args64 = "sample --preset two-point --d 3 --n 1000 --T 16 --seed 8 --precision fp64 "
                             "--sampler ddim --backend cpu -q --out ";
  ASSERT_EQ(run_cli(args64 + q(dir + "/one64.npy")).code, 0);
  const CliResult r = run_shell(mpirun_cli(3, args64 + q(dir + "/np64.npy")));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(bytes_of(dir + "/np64.npy") == bytes_of(dir + "/one64.npy"));
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"np1.npy", "np1.t12.npy", "np2.npy", "np2.t12.npy", "np3.npy",
                                                     "np3.t12.npy", "np64.npy", "one.npy", "one.t12.npy",
                                                     "one64.npy"}))
      << "temporaries left behind";
}

TEST(MpiCli, TvReportsTheOneProcessFigures) {
  const std::string dir = fresh_dir("mpi_tv");
  // Diagonal components: means2d and radial need the exact reference sample, split over the ranks too.
  const std::string model = write_text(
      dir + "/m.json", R"({"weights": [0.5, 0.5], "means": [[0, 1, 2], [1, -1, 0]], "var_diag": [[1, 2, 3], [0.5, 1, 1.5]]})");
  const std::string y = dir + "/y.npy";
  ASSERT_EQ(run_cli("sample --model " + q(model) + " --n 2001 --T 16 --backend cpu -q --out " + q(y)).code, 0);
  const std::string args = "tv " + q(y) + " --model " + q(model) +
                           " --stat means,means2d,radial,random:3 --reference-n 3001 --bootstrap 40 --backend cpu --json ";
  const CliResult one = run_cli(args + q(dir + "/one.json"));
  ASSERT_EQ(one.code, 0) << one.err;
  nlohmann::json want = nlohmann::json::parse(bytes_of(dir + "/one.json"));
  want.erase("backend");
  int with_reference = 0;
  for (const auto& s : want.at("stats")) with_reference += s.at("reference_n") == 3001;
  ASSERT_EQ(with_reference, 2) << "means2d and radial should use the reference sample";
  for (int np : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << "mpirun -np " << np);
    const std::string json = dir + "/np" + std::to_string(np) + ".json";
    const CliResult r = run_shell(mpirun_cli(np, args + q(json)));
    ASSERT_EQ(r.code, 0) << r.err;
    nlohmann::json got = nlohmann::json::parse(bytes_of(json));
    got.erase("backend");
    EXPECT_EQ(got, want);
    // The table too, after its first line (which names the ranks).
    EXPECT_EQ(r.out.substr(r.out.find('\n')), one.out.substr(one.out.find('\n')));
    EXPECT_EQ(count_of(r.out, "max: "), 1) << "printed by more than one rank:\n" << r.out;
  }
}

TEST(MpiCli, BracketGivesTheOneProcessFigures) {
  const std::string dir = fresh_dir("mpi_bracket");
  // ddpm (and ddim-song, eta > 0): outer draws in blocks of 64 (M = 8) over the ranks; ddim:
  // particles in blocks of 256.
  const std::vector<std::string> configs = {
      "bracket --preset random-sphere --d 4 --K 3 --T 16 --seed 2 --n 700 --M 8 --n-lower 3001 --bootstrap 40 "
      "--backend cpu --json ",
      "bracket --preset random-sphere --d 4 --K 3 --T 16 --seed 2 --sampler ddim --n 2900 --n-lower 3001 "
      "--bootstrap 40 --backend cpu --json ",
      // ddim-song with eta > 0 takes the path bound; a profiled score error's eps_Jacobi is rank 0's.
      "bracket --preset random-sphere --d 4 --K 3 --schedule cosine --T 32 --seed 2 --sampler ddim-song --eta 0.5 "
      "--score-error weights "
      "--eps 0.3 --error-profile back-loaded --n 700 --M 8 --n-lower 3001 --bootstrap 40 --backend cpu --json "};
  for (std::size_t c = 0; c < configs.size(); ++c) {
    SCOPED_TRACE(configs[c]);
    const std::string one_json = dir + "/one" + std::to_string(c) + ".json";
    const CliResult one = run_cli(configs[c] + q(one_json));
    ASSERT_EQ(one.code, 0) << one.err;
    nlohmann::json want = nlohmann::json::parse(bytes_of(one_json));
    // Not figures: the times, and the device the bounds ran on (each rank's own share of the cores).
    for (const char* k : {"seconds", "rate"}) want.erase(k);
    want["parameters"].erase("bounds_device");
    for (int np : {1, 2, 3}) {
      SCOPED_TRACE(testing::Message() << "mpirun -np " << np);
      const std::string json = dir + "/np" + std::to_string(np) + "_" + std::to_string(c) + ".json";
      const CliResult r = run_shell(mpirun_cli(np, configs[c] + q(json)));
      ASSERT_EQ(r.code, 0) << r.err;
      nlohmann::json got = nlohmann::json::parse(bytes_of(json));
      for (const char* k : {"seconds", "rate"}) got.erase(k);
      got["parameters"].erase("bounds_device");
      EXPECT_EQ(got, want);
      EXPECT_EQ(count_of(r.out, "consistent: "), 1) << "printed by more than one rank:\n" << r.out;
    }
  }
}

TEST(MpiCli, SweepRowsHoldTheOneProcessFigures) {
  const std::string dir = fresh_dir("mpi_sweep");
  const std::string sweep = write_text(dir + "/s.json", R"({"name": "mpi", "family": "random-sphere", "d": [2, 3],
      "K": 3, "T": [8, 16, 24], "n": 3000, "seeds": [0, 1], "tv": {"stats": "means,radial", "bootstrap": 20},
      "backend": "cpu"})");
  const CliResult one = run_cli("sweep " + q(sweep) + " --threads 1 --no-report --out " + q(dir + "/one"));
  ASSERT_EQ(one.code, 0) << one.err;
  const auto want = rows_by_key(dir + "/one/results.jsonl");
  ASSERT_EQ(want.size(), 12u);
  for (int np : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << "mpirun -np " << np);
    const std::string out = dir + "/np" + std::to_string(np);
    const CliResult r = run_shell(mpirun_cli(np, "sweep " + q(sweep) + " --no-report --out " + q(out)));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(rows_by_key(out + "/results.jsonl"), want);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 12) << "one line per run, from rank 0:\n" << r.out;
    EXPECT_EQ(count_of(r.err, "runs done now"), 1) << r.err;
  }
}

TEST(MpiCli, ARankKilledMidSweepThenAResumeLeavesEveryRunOnce) {
  constexpr auto kPoll = std::chrono::milliseconds(5);
  constexpr auto kGiveUp = std::chrono::seconds(60);
  const std::string dir = fresh_dir("mpi_kill");
  // 12 runs of about 0.1-0.4 s each on one core, so that the kill lands mid-sweep.
  const std::string sweep = write_text(dir + "/s.json", R"({"name": "mpikill", "family": "random-sphere",
      "d": [2, 4], "K": 3, "T": [16, 32, 64], "n": 20000, "seeds": [0, 1],
      "tv": {"stats": "means,radial", "bootstrap": 20}, "backend": "cpu"})");
  const std::string out = dir + "/out";
  const std::string cmd = mpirun_cli(3, "sweep " + q(sweep) + " --no-report --out " + q(out)) + " >" +
                          q(dir + "/1.out") + " 2>" + q(dir + "/1.err");
  const pid_t job = ::fork();
  if (job == 0) {
    ::setenv("CI", "1", 1);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(job, 0);
  const auto t0 = std::chrono::steady_clock::now();
  while (lines_of(out + "/results.jsonl").empty() && std::chrono::steady_clock::now() - t0 < kGiveUp)
    std::this_thread::sleep_for(kPoll);
  // Rank 1 of this job: the process whose command line names our directory and whose
  // environment says OMPI_COMM_WORLD_RANK=1.
  pid_t victim = -1;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = bytes_of("/proc/" + pid + "/cmdline"), env = bytes_of("/proc/" + pid + "/environ");
    if (cmdline.find(out) != std::string::npos && cmdline.find("sweep") != std::string::npos &&
        env.find(std::string("OMPI_COMM_WORLD_RANK=1") + '\0') != std::string::npos)
      victim = std::stoi(pid);
  }
  ASSERT_GT(victim, 0) << "rank 1 not found";
  ::kill(victim, SIGKILL);
  int status = 0;
  ::waitpid(job, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "the job did not fail when rank 1 was killed";
  const std::size_t before = lines_of(out + "/results.jsonl").size();
  SCOPED_TRACE("rows when rank 1 was killed: " + std::to_string(before));
  ASSERT_GE(before, 1u);
  ASSERT_LT(before, 12u) << "the sweep finished before the kill; make its runs longer";

  // The resume, with another rank count, does what is left, once.
  const CliResult r = run_shell(mpirun_cli(2, "sweep " + q(sweep) + " --no-report --out " + q(out)));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming: " + std::to_string(before) + " of 12"), std::string::npos) << r.err;
  EXPECT_EQ(lines_of(out + "/results.jsonl").size(), 12u);
  const auto got = rows_by_key(out + "/results.jsonl");  // fails on a key written twice
  ASSERT_EQ(got.size(), 12u);
  // And the figures of an uninterrupted one-process sweep.
  ASSERT_EQ(run_cli("sweep " + q(sweep) + " --threads 1 --no-report --out " + q(dir + "/one")).code, 0);
  EXPECT_EQ(got, rows_by_key(dir + "/one/results.jsonl"));
}

TEST(MpiCli, ABadInputIsReportedOnceWithTheUsualExitCode) {
  const std::string dir = fresh_dir("mpi_bad");
  struct Case {
    std::string args;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"sample --preset two-point --n 100 --T 0 --backend cpu --out " + q(dir + "/y.npy"), 2, "--T"},
      {"sample --preset two-point --n 100 --T 8 --backend cpu --out " + q(dir + "/no/y.npy"), 2, "does not exist"},
      {"tv " + q(dir + "/missing.npy") + " --preset two-point --backend cpu", 2, "missing.npy"},
      {"sweep " + q(write_text(dir + "/bad.json", R"({"T": [8, 0]})")) + " --out " + q(dir + "/out"), 2, "bad.json"},
      {"sample --preset two-point --n 100 --T 8 --backend cpu --chunk 100000000000 --out " + q(dir + "/y.npy"), 3,
       "does not fit"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const CliResult r = run_shell(mpirun_cli(3, c.args));
    EXPECT_EQ(r.code, c.code) << r.err;
    EXPECT_EQ(count_of(r.err, "gmmdiff: error:"), 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"bad.json"}));
}

TEST(MpiCli, AFailingRankEndsTheJobWithItsMessageAndNoFile) {
  const std::string dir = fresh_dir("mpi_fail");
  // Rank 1 alone runs a score scaled by 1 + 1e30 (an MPMD launch gives it those options): its
  // particles overflow float and turn non-finite while rank 0's are fine.
  const std::string args = " sample --preset two-point --n 2000 --T 8 --backend cpu --out " + q(dir + "/y.npy");
  const std::string cmd = mpirun_prefix(1) + q(GMMDIFF_CLI_PATH) + args + " : -np 1 " + q(GMMDIFF_CLI_PATH) + args +
                          " --score-error scale --eps 1e30";
  const CliResult r = run_shell(cmd);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(count_of(r.err, "gmmdiff: error:"), 1) << r.err;
  EXPECT_NE(r.err.find("gmmdiff: error: rank 1 of 2: a particle became NaN or Inf"), std::string::npos) << r.err;
  EXPECT_EQ(names_in(dir), std::vector<std::string>{}) << "a file was left behind";
}
