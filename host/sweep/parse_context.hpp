// gmmdiff (sweep): reading the values of a sweep file, each failure one line that names the file,
// the key and what is allowed (docs/sweeps.md; the bad-input table of docs/reliability.md).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/schedule.hpp"
#include "sweep/k_spec.hpp"

namespace gmmdiff::sweep_parse {

using json = nlohmann::json;

/// The input files of a sweep, each read once while it is parsed (by absolute path): every run
/// that names a file uses this copy, and its hash keys the run.
struct InputCache {
  std::map<std::string, std::shared_ptr<const Mixture>> models;
  std::map<std::string, std::shared_ptr<const Schedule>> schedules;  ///< by path and kind ("path|kind")
  std::map<std::string, std::shared_ptr<const NpyArray>> arrays;      ///< direction files of file: statistics
};

/// Where the values come from: the origin names the sweep in messages, base_dir anchors relative paths.
struct ParseContext {
  std::string origin;    ///< the file (or "default sweep")
  std::string base_dir;  ///< for relative paths
  std::shared_ptr<InputCache> inputs = std::make_shared<InputCache>();  ///< shared by the grids
  /// Throws gmmdiff::Error "<origin>: "<where>": <msg>" (no key part when where is empty).
  [[noreturn]] void fail(const std::string& where, const std::string& msg) const;
};

/// Every key of obj is one of allowed; otherwise "unknown key ... (did you mean ...); allowed: ...".
void check_keys(const ParseContext& c, const json& obj, const std::vector<std::string>& allowed,
                const std::string& where);
/// The values of an axis: a scalar is a list of one; an empty list is an error.
std::vector<json> items(const ParseContext& c, const json& v, const std::string& key);
double as_double(const ParseContext& c, const json& v, const std::string& key);
/// An integer in [lo, hi] (1e2 reads as 100; 8.5 and out-of-range values are errors).
int64_t as_int(const ParseContext& c, const json& v, const std::string& key, int64_t lo, int64_t hi);
std::string as_string(const ParseContext& c, const json& v, const std::string& key);
/// K as a number (1 .. 2^24) or as an expression in d ("4d", "d+1").
KSpec as_k(const ParseContext& c, const json& v, const std::string& key);
/// An absolute, normalised path; a relative one is taken from base_dir.
std::string resolve_path(const ParseContext& c, const std::string& p);
/// obj[key], or dflt when obj has no such key (the reference may be to dflt itself).
const json& get_or(const json& obj, const std::string& key, const json& dflt);

/// The values of an axis of names (samplers, precisions, ...), each through parse, whose
/// gmmdiff::Error becomes one line naming the key.
template <typename F>
auto parse_enum_list(const ParseContext& c, const json& v, const std::string& key, F parse) {
  std::vector<decltype(parse(std::string()))> out;
  for (const json& e : items(c, v, key)) {
    const std::string s = as_string(c, e, key);
    try {
      out.push_back(parse(s));
    } catch (const Error& err) {
      c.fail(key, err.what());
    }
  }
  return out;
}

}  // namespace gmmdiff::sweep_parse
