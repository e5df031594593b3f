// The `report` command (host/cli/cmd_report.cpp) on synthetic rows: tables, CSV and plots, and a
// missing results file as one line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "util/cli_util.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/report.hpp"

using namespace gmmdiff;
using namespace gmmdiff::test;
namespace fs = std::filesystem;

namespace {

constexpr double kQuantileTol = 1e-6;  // against 9-digit tables
constexpr double kExactFitTol = 1e-10;
constexpr double kSlopeTol = 0.05;  // a fit that lost one point of a jittered line

/// Deterministic log-scale jitter, orthogonal to log T over 6 equally log-spaced T and to log d
/// over 3 equally log-spaced d: the fits have residuals (so a CI of non-zero width) but the true
/// slopes stay exactly the least-squares ones.
double jitter(std::size_t t_index, std::size_t d_index) {
  constexpr double kT[6] = {1, -2, 1, 1, -2, 1}, kD[3] = {1, -2, 1};
  return 0.5 * kT[t_index % 6] + 0.5 * kD[d_index % 3];
}

struct Synth {
  std::string family = "two-point";
  double sd = 1.0;
  std::vector<int> Ts = {16, 32, 64, 128, 256, 512};
  std::vector<int> ds = {4, 16, 64};
  int seeds = 1;
  double rel_ci = 0.05;  // half-width of each run's CI, relative
  double floor = 1e-3;
  double jitter = 0.03;
};

/// Rows whose figure is tv(T, d, K, seed); unresolved where tv <= floor.
template <typename F>
std::vector<SweepRow> make_rows(const Synth& s, F tv) {
  std::vector<SweepRow> rows;
  const RunParams base = parse_sweep(R"({"T": 16, "n": 1000})", "synthetic").runs.at(0);
  std::size_t index = 0;
  for (std::size_t k = 0; k < s.ds.size(); ++k)
    for (std::size_t j = 0; j < s.Ts.size(); ++j)
      for (int seed = 0; seed < s.seeds; ++seed) {
        const int d = s.ds[k], T = s.Ts[j];
        SweepRow r;
        r.p = base;
        r.p.family = s.family;
        r.p.preset = s.family;
        r.p.sd = s.sd;
        r.p.d = d;
        r.p.K = s.family == "two-point" ? 2 : d;
        r.p.K_spec = s.family == "two-point" ? "2" : "d";
        r.p.T = T;
        r.p.seed = static_cast<uint64_t>(seed);
        r.key = r.p.key();
        r.sweep = "synthetic";
        r.index = index++;
        StatResult st;
        st.name = "means[0]";
        const double v = tv(T, d, r.p.K, seed) * std::exp(s.jitter * jitter(j, k));
        st.tv_corrected = v;
        st.tv = v + s.floor;
        st.floor = s.floor;
        st.ci_lo = v * (1 - s.rel_ci) - (v > s.floor ? 0 : 2 * s.floor);
        st.ci_hi = v * (1 + s.rel_ci);
        st.resolved = st.ci_lo > 0;
        r.stats = {st};
        r.eps_score = 0;
        rows.push_back(r);
      }
  return rows;
}

std::string fresh_dir(const std::string& name) {
  const std::string d = testing::TempDir() + "/report_" + std::to_string(::getpid()) + "_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(ReportCli, WritesTablesCsvAndPlots) {
  Synth s;
  const auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  const std::string dir = fresh_dir("cli");
  {
    std::ofstream f(dir + "/results.jsonl");
    for (const auto& r : rows) f << row_to_json(r) << "\n";
  }
  const CliResult r = run_cli("report '" + dir + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("consistent"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-1.0"), std::string::npos) << r.out;  // the fitted slope
  for (const char* f : {"report.md", "report.json", "results.csv"}) EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  const bool have_mpl = std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") == 0;
  if (have_mpl) {
    EXPECT_TRUE(fs::exists(dir + "/tv_vs_T.png")) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/tv_vs_d.png")) << r.err;
  }
  // Without a usable Python: one line, the tables still written, exit 0.
  fs::remove(dir + "/report.md");
  const std::string cmd = std::string("CI=1 GMMDIFF_PYTHON=/nonexistent/python3 '") + GMMDIFF_CLI_PATH + "' report '" +
                          dir + "' >/dev/null 2>" + dir + "/err.txt";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  const std::string err = slurp(dir + "/err.txt");
  EXPECT_NE(err.find("plots skipped"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_TRUE(fs::exists(dir + "/report.md"));
}

TEST(ReportCli, RowsWithBoundsGiveATwoSidedVerdictAndBands) {
  // Synthetic rows with the upper side (ddpm: C f(K, T); ddim-like exact points on one d and the
  // reference on another): the verdict table says confirmed, report.md has the band's columns, and
  // the plot script draws the band without error.
  Synth s;
  s.floor = 1e-5;
  auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  for (auto& r : rows) {
    const double u = 0.3 * theorem1_shape(r.p.K, r.p.T);
    r.p.bounds.on = true;
    r.key = r.p.key();
    r.bracket.present = true;
    r.bracket.tv_upper_mean = u;
    r.bracket.tv_upper_se = 0.01 * u;
    r.bracket.tv_upper = 1.01645 * u;
    r.bracket.M = 32;
    r.bracket.tv_reference = r.p.d == 4 ? 0.5 * u : RowBracket::nan;
  }
  const std::string dir = fresh_dir("bounds");
  {
    std::ofstream f(dir + "/results.jsonl");
    for (const auto& r : rows) f << row_to_json(r) << "\n";
  }
  const CliResult r = run_cli("report '" + dir + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("confirmed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("upper: d-exp. of U/f"), std::string::npos) << r.out;
  const std::string md = slurp(dir + "/report.md");
  EXPECT_NE(md.find("| upper | exact [CI] | reference |"), std::string::npos) << md;
  EXPECT_NE(md.find("**confirmed**"), std::string::npos) << md;
  const bool have_mpl = std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") == 0;
  if (have_mpl) {
    EXPECT_TRUE(fs::exists(dir + "/tv_vs_T.png")) << r.err;
    EXPECT_EQ(r.err.find("plots failed"), std::string::npos) << r.err;
  }
}

TEST(ReportCli, MissingResultsIsOneLine) {
  const std::string dir = fresh_dir("empty");
  const CliResult r = run_cli("report '" + dir + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no results.jsonl"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// Issue 15: rows of results.jsonl that belong to no run of the sweep (keys.txt, written by the
// sweep) were said to be "kept but not reported" yet appeared in report.md and results.csv.
TEST(ReportCli, RowsOfOtherRunsAreNotReported) {
  Synth s;
  auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  const std::string dir = fresh_dir("foreign");
  SweepRow foreign = rows[0];
  foreign.p.T = 4096;
  foreign.key = foreign.p.key();
  {
    std::ofstream f(dir + "/results.jsonl");
    for (const auto& r : rows) f << row_to_json(r) << "\n";
    f << row_to_json(foreign) << "\n";
    std::ofstream k(dir + "/" + kSweepKeysFile);
    for (const auto& r : rows) k << r.key << "\n";
  }
  const CliResult r = run_cli("report --no-plots '" + dir + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("1 rows of results.jsonl belong to no run of this sweep"), std::string::npos) << r.err;
  const std::string csv = slurp(dir + "/results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<long>(rows.size() + 1)) << csv;
  EXPECT_EQ(csv.find(foreign.key), std::string::npos);
  EXPECT_EQ(slurp(dir + "/report.json").find("4096"), std::string::npos);
  EXPECT_NE(slurp(dir + "/report.md").find("belong to no run of this sweep"), std::string::npos);
}

// Issue 15: an interrupted report deleted the old plots before the new ones existed. The plot
// script now runs with the old plots in place; those it did not redraw go only after it finished.
TEST(ReportCli, OldPlotsStayUntilTheScriptHasFinished) {
  Synth s;
  const auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  const std::string dir = fresh_dir("old_plots");
  {
    std::ofstream f(dir + "/results.jsonl");
    for (const auto& r : rows) f << row_to_json(r) << "\n";
  }
  std::ofstream(dir + "/tv_vs_T.png") << "old";
  std::ofstream(dir + "/tv_vs_K.png") << "old";
  const std::string script = dir + "/fake_plot.py";
  std::ofstream(script) << "import os, sys\n"
                           "d = sys.argv[1]\n"
                           "seen = os.path.exists(os.path.join(d, 'tv_vs_T.png'))\n"
                           "open(os.path.join(d, 'seen.txt'), 'w').write('yes' if seen else 'no')\n"
                           "tmp = os.path.join(d, '.new.png')\n"
                           "open(tmp, 'w').write('new')\n"
                           "os.replace(tmp, os.path.join(d, 'tv_vs_T.png'))\n";
  const std::string cmd = std::string("CI=1 GMMDIFF_PLOT_SCRIPT='") + script + "' '" + GMMDIFF_CLI_PATH + "' report '" +
                          dir + "' >/dev/null 2>" + dir + "/err.txt";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir + "/err.txt");
  EXPECT_EQ(slurp(dir + "/seen.txt"), "yes") << "the old plots were removed before the script ran";
  EXPECT_EQ(slurp(dir + "/tv_vs_T.png"), "new");
  EXPECT_FALSE(fs::exists(dir + "/tv_vs_K.png")) << "a plot the script did not redraw stayed";
}
