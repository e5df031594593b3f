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
