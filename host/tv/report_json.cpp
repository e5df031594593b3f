// gmmdiff: a TV report as JSON (gmmdiff/tv.hpp tv_json): the text `gmmdiff tv --json` writes and
// the dict Python's gmmdiff.tv returns, so that the two cannot differ in a key or a value.
#include <nlohmann/json.hpp>

#include "gmmdiff/tv.hpp"

namespace gmmdiff {

namespace {

nlohmann::json stat_json(const StatResult& s) {
  return {{"name", s.name},         {"dims", s.dims},       {"bins", s.bins},
          {"tv", s.tv},             {"tv_corrected", s.tv_corrected},
          {"floor", s.floor},       {"ci95", {s.ci_lo, s.ci_hi}},
          {"ci95_joint_lo", s.ci_lo_joint},
          {"resolved", s.resolved}, {"exact_target", s.exact_target},
          {"reference_n", s.reference_n},
          {"kl", s.kl},             {"kl_mm", s.kl_mm},
          {"kl_ci95", {s.kl_ci_lo, s.kl_ci_hi}}};
}

nlohmann::json text_or_null(const std::optional<std::string>& s) { return s ? nlohmann::json(*s) : nlohmann::json(); }

}  // namespace

std::string tv_json(const TvReport& r, const Mixture& target, const TvOptions& opt, const std::string& backend,
                    const std::optional<std::string>& sample, const std::optional<std::string>& against) {
  nlohmann::json j;
  j["sample"] = text_or_null(sample);
  j["n"] = r.n;
  j["nonfinite"] = r.nonfinite;
  j["finite"] = r.n - r.nonfinite;
  j["d"] = target.d;
  j["K"] = target.K;
  j["backend"] = backend;
  j["options"] = {{"stats", opt.stats},
                  {"bins", opt.bins},
                  {"bootstrap", opt.bootstrap},
                  {"seed", opt.seed},
                  {"reference_n", opt.reference_n}};
  nlohmann::json stats = nlohmann::json::array();
  for (const auto& s : r.stats) stats.push_back(stat_json(s));
  j["stats"] = stats;
  j["best"] = r.best;
  j["max"] = stat_json(r.max());
  j["best_kl"] = r.best_kl;
  j["max_kl"] = stat_json(r.max_kl());
  j["selection"] = {{"statistics", r.stats.size()},
                    {"joint_lo", r.max().ci_lo_joint},
                    {"meaning", "max is the largest of the statistics; its ci95 does not account for the choice, "
                                "joint_lo (Bonferroni over all of them) does"}};
  j["against"] = text_or_null(against);
  j["against_n"] = r.against_n;
  j["against_nonfinite"] = r.against_nonfinite;
  j["notes"] = r.notes;
  return j.dump(2);
}

}  // namespace gmmdiff
