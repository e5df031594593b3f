// gmmdiff report: the tables, fitted slopes and plots of a sweep's output directory
// (docs/sweeps.md).
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include "cli/command.hpp"
#include "gmmdiff/claims.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/report.hpp"

namespace gmmdiff::cli {

namespace {

/// tools/plot_sweep.py: $GMMDIFF_PLOT_SCRIPT, else the source tree's, else the installed one.
std::string plot_script() {
  if (const char* e = std::getenv("GMMDIFF_PLOT_SCRIPT"); e && *e) return e;
  for (const char* p : {GMMDIFF_PLOT_SCRIPT_SOURCE, GMMDIFF_PLOT_SCRIPT_INSTALLED})
    if (std::filesystem::exists(p)) return p;
  return "";
}

/// The tv_vs_*.png plots of dir, by name, with their inode numbers.
std::map<std::string, ino_t> plot_files(const std::string& dir) {
  std::map<std::string, ino_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    struct stat st {};
    if (e.path().extension() == ".png" && name.rfind("tv_vs_", 0) == 0 && ::lstat(e.path().c_str(), &st) == 0)
      out[name] = st.st_ino;
  }
  return out;
}

}  // namespace

void finish_report(const std::string& dir, bool plots, bool print_slopes, const ReportOptions& opt) {
  namespace fs = std::filesystem;
  const Report r = write_report(dir, opt);
  for (const auto& n : r.notes) std::cerr << "gmmdiff report: note: " << n << "\n";
  std::string plot_msg;
  if (plots) {
    // Old plots of this directory would mislead if this run draws fewer of them: those the script
    // did not redraw (it replaces a plot by renaming a new file over it: a new inode) are removed,
    // but only after it finished, so an interrupted report leaves the old plots whole.
    const auto old_plots = plot_files(dir);
    plot_msg = run_plot_script(plot_script(), dir);
    const auto now = plot_files(dir);
    std::error_code ec;
    for (const auto& [name, ino] : old_plots) {
      const auto it = now.find(name);
      if (it != now.end() && it->second == ino) fs::remove(fs::path(dir) / name, ec);
    }
    if (!plot_msg.empty()) std::cerr << "gmmdiff report: " << plot_msg << "\n";
  }
  if (print_slopes) std::cout << slope_table(r) << "\n";
  std::cout << verdict_table(r);
  // A claim's sweep (docs/claims.md): the claim's figures and verdict, by the claim's own rule.
  const ClaimVerdict cv = write_claim_verdict(dir, opt.level);
  if (!cv.claim.empty())
    std::cout << "\nclaim " << cv.claim << ": " << cv.verdict << "\n"
              << claims_table({cv}, {(fs::path(dir) / "claim.md").string()});
  std::cout << "report: " << (fs::path(dir) / "report.md").string() << ", " << (fs::path(dir) / "report.json").string()
            << ", " << (fs::path(dir) / "results.csv").string();
  if (!cv.claim.empty())
    std::cout << ", " << (fs::path(dir) / "claim.md").string() << ", " << (fs::path(dir) / "claim.json").string();
  if (plots && plot_msg.empty()) {
    std::error_code ec;
    std::vector<std::string> pngs;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".png") pngs.push_back(e.path().filename().string());
    std::sort(pngs.begin(), pngs.end());
    for (const auto& p : pngs) std::cout << ", " << p;
  }
  std::cout << std::endl;
}

namespace {

Runner setup(CLI::App& sub) {
  auto dir = std::make_shared<std::string>();
  auto no_plots = std::make_shared<bool>(false);
  auto opt = std::make_shared<ReportOptions>();
  sub.add_option("dir", *dir, "A sweep's output directory (holding results.jsonl)")->required();
  sub.add_flag("--no-plots", *no_plots, "Tables only (no PNG plots)");
  sub.add_option("--level", opt->level,
                 "Confidence level of the fitted slopes' intervals (points keep their 95% intervals)")
      ->capture_default_str();
  sub.add_option("--growth-tol", opt->growth_tol,
                 "gamma of the verdict: growth exponents of TV/f below it count as bounded")
      ->capture_default_str();
  return [=]() -> int {
    if (!(opt->level > 0 && opt->level < 1)) throw Error("--level must lie in (0, 1)");
    if (!(opt->growth_tol > 0)) throw Error("--growth-tol must be positive");
    if (!std::filesystem::exists(*dir)) throw Error(*dir + ": no such directory (give a sweep's --out directory)");
    if (!std::filesystem::is_directory(*dir))
      throw Error(*dir + ": not a directory (give a sweep's --out directory, which holds results.jsonl)");
    finish_report(*dir, !*no_plots, true, *opt);
    return kOk;
  };
}

const Registrar reg("report", "Tables, fitted slopes with CIs, the verdict and PNG plots of a sweep's results", 45,
                    setup);

}  // namespace
}  // namespace gmmdiff::cli
