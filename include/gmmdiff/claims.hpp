// gmmdiff: the published claims gmmdiff checks, each with its built-in sweep (docs/claims.md).
//
// A claim names its paper and statement, what gmmdiff measures and why that tests it, the sweep
// that measures it (`gmmdiff sweep <name> --out DIR`), and the claimed value of the exponent the
// report fits. The sweeps are embedded JSON (docs/sweeps.md), each sized for a backend kind:
// "cpu" (about 3 minutes on 2 CPU cores), "gpu" (larger, on one GPU) and "tiny" (seconds: CI and
// the main job's short versions).
#pragma once
#include <string>
#include <vector>

#include "gmmdiff/report.hpp"

namespace gmmdiff {

struct Claim {
  std::string name;       ///< "theorem1", "key-lemma", ...: also its sweep's name
  std::string paper;      ///< "arXiv 2504.05300, Theorem 1"
  std::string statement;  ///< the paper's statement, in one line
  std::string measured;   ///< what gmmdiff measures, and why that tests it
  std::string claimed;    ///< the claimed value, as the verdict compares it ("slope in T <= -1")
};

/// The claims, in the order `gmmdiff claims` lists them.
const std::vector<Claim>& claims();
/// The claim of that name; throws gmmdiff::Error naming the known ones otherwise.
const Claim& find_claim(const std::string& name);

/// A built-in sweep: the default one ("default") and one per claim.
struct BuiltinSweep {
  std::string name;
  std::string summary;  ///< one line for `gmmdiff sweep --list`
};
std::vector<BuiltinSweep> builtin_sweeps();
/// Whether name is a built-in sweep's ("default" or a claim's).
bool is_builtin_sweep(const std::string& name);
/// The sweep's JSON for a size: "cpu", "gpu" (alias "cuda") or "tiny". Throws gmmdiff::Error for
/// an unknown name or size.
std::string builtin_sweep_json(const std::string& name, const std::string& size);

}  // namespace gmmdiff

namespace gmmdiff {

// ---- per-claim verdicts (docs/claims.md, "Verdicts") ----

/// One exponent a claim is about, fitted on each side that the rows support. A lower-side figure
/// is below the true quantity (the TV lower bound; a maximum over draws of ||J_t||_op); an
/// upper-side figure above it (tv_upper, tv_exact's estimate, kl_upper); an exact figure (a closed
/// form, or the quantity itself measured directly) is both. The verdict follows the claim's
/// direction: for "exponent <= c", confirmed only when the upper side's CI lies at or below c,
/// refuted only when the lower side's CI lies above c; for "exponent >= c" the mirror image;
/// inconclusive otherwise (or when the sides contradict each other).
struct ClaimFigure {
  std::string what;        ///< "T-exponent of TV / f(K, T)"
  bool at_most = true;     ///< the claim: exponent <= bound (true) or >= bound (false)
  double bound = 0;        ///< the claimed exponent
  std::string lower_from;  ///< the lower side's figure ("" when the rows have none)
  std::string upper_from;  ///< the upper side's figure ("" when the rows have none)
  LineFit lower, upper;    ///< the fits (not ok() where a side has too few points)
  std::string verdict;     ///< confirmed | refuted | inconclusive
  std::string side;        ///< the figure shown as measured: "upper", "lower", "exact", "measured" or ""
  std::string why;         ///< one line
  std::string claimed() const;  ///< "<= 0", ">= 1"
  const LineFit& shown() const { return side == "lower" ? lower : upper; }
};

/// A claim judged on its sweep's rows.
struct ClaimVerdict {
  std::string claim;   ///< the claim's name
  std::string sweep;   ///< the rows' sweep name
  std::size_t rows = 0;
  std::vector<ClaimFigure> figures;
  /// refuted when any figure is refuted, confirmed when every figure is, inconclusive otherwise.
  std::string verdict;
};

/// The claim a sweep name checks: "kl-rate-tiny" -> "kl-rate" (a claim's name followed by a size
/// suffix, or the name itself); "" for other sweeps.
std::string claim_of_sweep(const std::string& sweep_name);

/// The claim's figures and verdict from rows of its sweep (any size; rows of other sweeps with
/// the same parameters work too). level: the fits' confidence level. Throws gmmdiff::Error for an
/// unknown claim.
ClaimVerdict judge_claim(const std::string& claim, const std::vector<SweepRow>& rows, double level = 0.95);

/// claim.md (the figures, both sides, why) and claim.json of a verdict.
std::string claim_markdown(const ClaimVerdict& v);
std::string claim_json(const ClaimVerdict& v);

/// Writes dir/claim.md and dir/claim.json (atomically) from dir/results.jsonl when its sweep is a
/// claim's; returns the verdict, or one with an empty claim when the sweep is no claim's.
ClaimVerdict write_claim_verdict(const std::string& dir, double level = 0.95);

/// The one table: claim | measured [95% CI] | claimed | verdict | details, one line per figure;
/// details[i] is where verdicts[i]'s details are (a path).
std::string claims_table(const std::vector<ClaimVerdict>& verdicts, const std::vector<std::string>& details);

}  // namespace gmmdiff
