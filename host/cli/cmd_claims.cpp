// gmmdiff claims: the published claims gmmdiff checks, one per line: claim | paper | what is
// measured | the sweep that checks it (include/gmmdiff/claims.hpp, docs/claims.md).
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.hpp"
#include "gmmdiff/claims.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::cli {
namespace {

struct ClaimsArgs {
  bool json = false, verbose = false;
  std::string name;
  std::vector<std::string> verdict_dirs;
  double level = 0.95;
};

/// `--verdicts DIR...`: each directory's report and claim verdict (report.md, claim.md, ...), then
/// the one table (the main job's last output).
int verdicts(const ClaimsArgs& a) {
  namespace fs = std::filesystem;
  if (!(a.level > 0 && a.level < 1)) throw Error("--level must lie in (0, 1)");
  std::vector<ClaimVerdict> vs;
  std::vector<std::string> where;
  for (std::size_t i = 0; i < a.verdict_dirs.size(); ++i) {
    const std::string& dir = a.verdict_dirs[i];
    if (!fs::is_directory(dir)) throw Error(dir + ": no such directory (give a claim sweep's --out directory)");
    // The same directory twice would be one sweep's verdict counted twice in the table.
    for (std::size_t j = 0; j < i; ++j) {
      std::error_code ec;
      if (fs::equivalent(dir, a.verdict_dirs[j], ec))
        throw Error(dir + ": given twice to --verdicts (as " + a.verdict_dirs[j] + "); each sweep once");
    }
  }
  for (const std::string& dir : a.verdict_dirs) {
    ReportOptions ro;
    ro.level = a.level;
    write_report(dir, ro);
    ClaimVerdict v = write_claim_verdict(dir, a.level);
    if (v.claim.empty())
      throw Error(dir + ": its sweep is no claim's (a claim sweep is named after its claim: gmmdiff sweep --list)");
    vs.push_back(std::move(v));
    where.push_back((fs::path(dir) / "claim.md").string());
  }
  std::cout << claims_table(vs, where);
  return kOk;
}

Runner setup(CLI::App& sub) {
  auto a = std::make_shared<ClaimsArgs>();
  sub.add_option("claim", a->name, "Show one claim in full");
  sub.add_flag("--json", a->json, "Print the claims as JSON");
  sub.add_flag("-v,--verbose", a->verbose, "Each claim in full: statement, what is measured, the claimed value");
  sub.add_option("--verdicts", a->verdict_dirs,
                 "Claim sweeps' output directories: write each one's report and claim verdict, then print one "
                 "table: claim | measured [95% CI] | claimed | verdict | details")
      ->expected(1, -1);
  CLI::Option* level = sub.add_option("--level", a->level,
                                      "Confidence level of the fitted exponents' intervals (with --verdicts)")
                           ->capture_default_str();
  return [a, level]() -> int {
    if (a->verdict_dirs.empty() && level->count() > 0)
      throw Error("--level applies to --verdicts only (the claims' list has no fitted intervals)");
    if (!a->verdict_dirs.empty()) {
      if (!a->name.empty() || a->json || a->verbose) throw Error("--verdicts takes directories only");
      return verdicts(*a);
    }
    std::vector<Claim> list;
    if (a->name.empty()) list = claims();
    else list.push_back(find_claim(a->name));
    if (a->json) {
      nlohmann::json j = nlohmann::json::array();
      for (const Claim& c : list)
        j.push_back({{"claim", c.name},
                     {"paper", c.paper},
                     {"statement", c.statement},
                     {"measured", c.measured},
                     {"claimed", c.claimed},
                     {"sweep", "gmmdiff sweep " + c.name}});
      std::cout << j.dump(2) << "\n";
      return kOk;
    }
    if (a->verbose || !a->name.empty()) {
      for (const Claim& c : list)
        std::cout << c.name << " (" << c.paper << ")\n  claim:    " << c.statement << "\n  measured: " << c.measured
                  << "\n  claimed:  " << c.claimed << "\n  sweep:    gmmdiff sweep " << c.name
                  << " [--size cpu|gpu|tiny] --out DIR\n\n";
      return kOk;
    }
    std::cout << "claim | paper | what is measured: the claimed value | the sweep\n--- | --- | --- | ---\n";
    for (const Claim& c : list)
      std::cout << c.name << " | " << c.paper << " | " << c.claimed << " | gmmdiff sweep " << c.name << "\n";
    std::cout << "(gmmdiff claims NAME or -v: each in full; docs/claims.md)\n";
    return kOk;
  };
}

const Registrar reg("claims", "The published claims gmmdiff checks: claim | paper | what is measured | the sweep", 45,
                    setup);

}  // namespace
}  // namespace gmmdiff::cli
