// gmmdiff claims: the published claims gmmdiff checks, one per line: claim | paper | what is
// measured | the sweep that checks it (include/gmmdiff/claims.hpp, docs/claims.md).
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
};

Runner setup(CLI::App& sub) {
  auto a = std::make_shared<ClaimsArgs>();
  sub.add_option("claim", a->name, "Show one claim in full");
  sub.add_flag("--json", a->json, "Print the claims as JSON");
  sub.add_flag("-v,--verbose", a->verbose, "Each claim in full: statement, what is measured, the claimed value");
  return [a]() -> int {
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
