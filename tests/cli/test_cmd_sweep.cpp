// The `sweep` command (host/cli/cmd_sweep.cpp): killed with SIGKILL mid-sweep and resumed without
// lost or duplicated rows, a bad sweep file as one line with nothing written, a second concurrent
// writer refused, --print-default and --dry-run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "util/cli_util.hpp"
#include "util/sweep_util.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "gmmdiff/version.hpp"
#include "sweep/dir_lock.hpp"

#include <nlohmann/json.hpp>

using namespace gmmdiff;
using namespace gmmdiff::test;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- the command line

namespace {
/// Starts `gmmdiff args...` with stdout and stderr to files; returns the pid.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("CI", "1", 1);
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    std::string exe = GMMDIFF_CLI_PATH;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

int complete_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  int n = 0;
  char ch;
  while (in.get(ch)) n += ch == '\n';
  return n;
}
}  // namespace

TEST(SweepCli, KilledWithSigkillResumesWithoutLostOrDuplicatedRows) {
  constexpr auto kPoll = std::chrono::milliseconds(2);
  constexpr auto kGiveUp = std::chrono::seconds(60);
  const std::string dir = fresh_dir("kill");
  // Longer runs than kTinySweep so that the kill lands mid-sweep: 8 runs of ~0.1-0.5 s.
  const std::string sweep = write_text(dir + "/s.json", R"({"name": "killme", "family": "two-point",
      "d": [2, 4], "T": [16, 32, 64, 128], "n": 20000, "tv": {"stats": "means", "bootstrap": 20}, "backend": "cpu"})");
  const SweepSpec spec = load_sweep_file(sweep);
  const std::string out = dir + "/out";

  const pid_t pid = spawn_cli({"sweep", sweep, "--out", out, "--no-report"}, dir + "/1.out", dir + "/1.err");
  ASSERT_GT(pid, 0);
  const auto t0 = std::chrono::steady_clock::now();
  while (complete_lines(out + "/results.jsonl") < 1 && std::chrono::steady_clock::now() - t0 < kGiveUp)
    std::this_thread::sleep_for(kPoll);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the sweep finished before the kill; make its runs longer";
  const int before = complete_lines(out + "/results.jsonl");
  SCOPED_TRACE("rows at the kill: " + std::to_string(before));
  ASSERT_GE(before, 1);
  ASSERT_LT(before, static_cast<int>(spec.runs.size()));
  // And a half-written line on top, as a kill inside write(2) would leave.
  {
    const auto lines = lines_of(out + "/results.jsonl");
    std::ofstream(out + "/results.jsonl", std::ios::app) << lines.back().substr(0, 25);
  }

  const CliResult r = run_cli("sweep '" + sweep + "' --out '" + out + "' --no-report");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming: " + std::to_string(before) + " of"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("partial last line"), std::string::npos) << r.err;
  // Only the missing runs printed rows.
  int printed = 0;
  for (char ch : r.out) printed += ch == '\n';
  EXPECT_EQ(printed, static_cast<int>(spec.runs.size()) - before) << r.out;

  const auto rows = read_results(out + "/results.jsonl");
  EXPECT_EQ(lines_of(out + "/results.jsonl").size(), spec.runs.size());
  std::set<std::string> got, want;
  for (const auto& row : rows) EXPECT_TRUE(got.insert(row.key).second) << "duplicate " << row.key;
  for (const auto& p : spec.runs) want.insert(p.key());
  EXPECT_EQ(got, want);

  // The interrupted sweep's figures equal those of an uninterrupted one.
  SweepRunOptions o;
  o.out_dir = dir + "/straight";
  const SweepOutcome straight = run_sweep(spec, o);
  std::map<std::string, double> tv;
  for (const auto& row : rows) tv[row.key] = row.tv();
  for (const auto& row : straight.rows) {
    SCOPED_TRACE(row.p.label());
    EXPECT_EQ(tv.at(row.key), row.tv());
  }
}

TEST(SweepCli, BadSweepFileIsOneLineNonZeroAndWritesNothing) {
  const std::string dir = fresh_dir("bad");
  const std::string out = dir + "/out";
  for (const char* text :
       {R"({"T": [8], "dd": 3})", R"({"T": [8], "family": "simplex", "d": 2, "K": 5})", R"({"T": [8, 0]})", "{"}) {
    SCOPED_TRACE(text);
    const std::string f = write_text(dir + "/bad.json", text);
    const CliResult r = run_cli("sweep '" + f + "' --out '" + out + "'");
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(fs::exists(out));
  }
  const CliResult missing = run_cli("sweep '" + dir + "/none.json' --out '" + out + "'");
  EXPECT_EQ(missing.code, 2);
  EXPECT_FALSE(fs::exists(out));
}

TEST(SweepCli, ASecondConcurrentWriterIsRefused) {
  const std::string dir = fresh_dir("concurrent");
  const std::string sweep = write_text(dir + "/s.json", kTinySweep);
  const std::string out = dir + "/out";
  fs::create_directories(out);
  DirLock held(out);  // as if another sweep were running there
  const CliResult r = run_cli("sweep '" + sweep + "' --out '" + out + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("another gmmdiff sweep is writing"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(out + "/results.jsonl"));
}

TEST(SweepCli, PrintDefaultIsAValidSweepAndDryRunListsIt) {
  const CliResult r = run_cli("sweep --print-default --backend cpu");
  ASSERT_EQ(r.code, 0) << r.err;
  const SweepSpec s = parse_sweep(r.out, "printed");
  EXPECT_EQ(s.name, "dimension-free-cpu");
  const std::string dir = fresh_dir("dry");
  const std::string f = write_text(dir + "/d.json", r.out);
  const CliResult dry = run_cli("sweep '" + f + "' --dry-run --out '" + dir + "/out'");
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find(std::to_string(s.runs.size()) + " runs (0 done"), std::string::npos) << dry.out;
  EXPECT_FALSE(fs::exists(dir + "/out"));
}

TEST(SweepCli, BoundsReachEveryRowAndTheReportJudgesBothSides) {
  // A small sweep with bounds, end to end: every row carries the bracket's keys (a two-point model
  // is reducible: the reference too, below the upper bound), the report's verdict uses the
  // two-sided words, and report.md has the upper side's columns.
  const std::string dir = fresh_dir("bounds");
  const std::string f = write_text(dir + "/b.json", R"({"name": "b", "family": "two-point", "d": [2, 4, 8],
      "T": [64, 96, 128], "n": 3000, "backend": "cpu", "tv": {"stats": "means,radial", "bootstrap": 40},
      "bounds": {"M": 8, "n": 256}})");
  const CliResult r = run_cli("sweep '" + f + "' --out '" + dir + "/out' --threads 2");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<SweepRow> rows = read_results(dir + "/out/results.jsonl");
  ASSERT_EQ(rows.size(), 9u);
  for (const auto& row : rows) {
    SCOPED_TRACE(row.p.label());
    ASSERT_TRUE(row.bracket.present);
    EXPECT_TRUE(row.bracket.error.empty()) << row.bracket.error;
    EXPECT_EQ(row.bracket.M, 8);
    ASSERT_TRUE(std::isfinite(row.bracket.tv_reference));
    EXPECT_LE(row.bracket.tv_reference, row.bracket.tv_upper);
    EXPECT_LE(row.figure().ci_lo, row.bracket.tv_upper);
    // (The lower bound's CI against the reference is a 95% statement per row, and these rows'
    // samples are nested across d: not asserted row by row here; tests/bounds does it.)
  }
  EXPECT_TRUE(r.out.find("confirmed") != std::string::npos || r.out.find("refuted") != std::string::npos ||
              r.out.find("inconclusive") != std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("consistent"), std::string::npos) << "a bounded group got a one-sided verdict:\n" << r.out;
  const std::string both = r.out + r.err;  // each row's progress line shows the other side
  EXPECT_NE(both.find("  upper 0."), std::string::npos) << both;
  EXPECT_NE(both.find("  ref 0."), std::string::npos) << both;
  const std::string md = slurp(dir + "/out/report.md");
  EXPECT_NE(md.find("| upper | exact [CI] | reference |"), std::string::npos) << md;
}

// Issue 15: a write that fails for a full disk (here a file-size limit, the same class) is exit 3
// in a sweep as in `sample`; it was exit 2.
TEST(SweepCli, AFullDiskIsExit3AsForSample) {
  const std::string dir = fresh_dir("full");
  const std::string sweep = write_text(dir + "/s.json", kTinySweep);
  const std::string cmd = "cd '" + dir + "' && ulimit -f 2 && trap '' XFSZ && CI=1 '" + GMMDIFF_CLI_PATH +
                          "' sweep s.json --out out --no-report >/dev/null 2>err.txt";
  const int st = std::system(("sh -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 3) << slurp(dir + "/err.txt");
  EXPECT_NE(slurp(dir + "/err.txt").find("File too large"), std::string::npos) << slurp(dir + "/err.txt");
}

// Issue 15: --dry-run makes the real run's checks: a directory of another sweep is refused (it was
// listed as all to do), and a done run is counted as the run would count it.
TEST(SweepCli, DryRunRefusesWhatTheRunRefuses) {
  const std::string dir = fresh_dir("dry_other");
  const std::string tiny = write_text(dir + "/tiny.json", kTinySweep);
  const std::string other = write_text(dir + "/other.json", R"({"T": [8], "n": 100, "backend": "cpu"})");
  ASSERT_EQ(run_cli("sweep '" + other + "' --no-report --out '" + dir + "/out'").code, 0);
  const CliResult dry = run_cli("sweep '" + tiny + "' --dry-run --out '" + dir + "/out'");
  EXPECT_EQ(dry.code, 2);
  EXPECT_NE(dry.err.find("holds a different sweep"), std::string::npos) << dry.err;
  const CliResult same = run_cli("sweep '" + other + "' --dry-run --out '" + dir + "/out'");
  EXPECT_EQ(same.code, 0) << same.err;
  EXPECT_NE(same.out.find("1 runs (1 done"), std::string::npos) << same.out;
}
