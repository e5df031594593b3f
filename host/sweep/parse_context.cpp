// gmmdiff (sweep): reading the values of a sweep file (host/sweep/parse_context.hpp).
#include "sweep/parse_context.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "io/text.hpp"

namespace gmmdiff::sweep_parse {
namespace {

/// The allowed key closest to key, if it is within two edits ("" otherwise).
std::string closest_key(const std::string& key, const std::vector<std::string>& allowed) {
  std::string hint;
  std::size_t best = 3;
  for (const auto& a : allowed) {
    const std::size_t e = text::edit_distance(key, a);
    if (e < best) {
      best = e;
      hint = a;
    }
  }
  return hint;
}

}  // namespace

void ParseContext::fail(const std::string& where, const std::string& msg) const {
  throw Error(origin + ": " + (where.empty() ? "" : "\"" + where + "\": ") + msg);
}

void check_keys(const ParseContext& c, const json& obj, const std::vector<std::string>& allowed,
                const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    const std::string hint = closest_key(it.key(), allowed);
    std::string msg = "unknown key \"" + it.key() + "\"" + (where.empty() ? "" : " in " + where);
    if (!hint.empty()) msg += " (did you mean \"" + hint + "\"?)";
    msg += "; allowed: " + text::join(allowed);
    c.fail("", msg);
  }
}

std::vector<json> items(const ParseContext& c, const json& v, const std::string& key) {
  if (!v.is_array()) return {v};
  if (v.empty()) c.fail(key, "empty list (give at least one value)");
  return std::vector<json>(v.begin(), v.end());
}

double as_double(const ParseContext& c, const json& v, const std::string& key) {
  if (!v.is_number()) c.fail(key, "expected a number, got " + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x)) c.fail(key, "expected a finite number, got " + v.dump());
  return x;
}

int64_t as_int(const ParseContext& c, const json& v, const std::string& key, int64_t lo, int64_t hi) {
  if (!v.is_number()) c.fail(key, "expected an integer, got " + v.dump());
  const double x = v.get<double>();
  if (!(x == std::floor(x)) || !std::isfinite(x)) c.fail(key, "expected an integer, got " + v.dump());
  if (x < static_cast<double>(lo) || x > static_cast<double>(hi))
    c.fail(key, v.dump() + " is out of range (allowed: " + std::to_string(lo) + " .. " + std::to_string(hi) + ")");
  return static_cast<int64_t>(x);
}

std::string as_string(const ParseContext& c, const json& v, const std::string& key) {
  if (!v.is_string()) c.fail(key, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

KSpec as_k(const ParseContext& c, const json& v, const std::string& key) {
  if (v.is_string()) return KSpec::parse(v.get<std::string>(), c.origin + ": \"" + key + "\"");
  return KSpec::constant(static_cast<int>(as_int(c, v, key, 1, 1 << 24)));
}

std::string resolve_path(const ParseContext& c, const std::string& p) {
  namespace fs = std::filesystem;
  fs::path q(p);
  if (q.is_relative()) q = fs::path(c.base_dir) / q;
  std::error_code ec;
  fs::path a = fs::absolute(q, ec);
  return (ec ? q : a).lexically_normal().string();
}

const json& get_or(const json& obj, const std::string& key, const json& dflt) {
  auto it = obj.find(key);
  return it == obj.end() ? dflt : *it;
}

}  // namespace gmmdiff::sweep_parse
