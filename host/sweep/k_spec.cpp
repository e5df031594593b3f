// gmmdiff (sweep): K as a sweep file writes it (host/sweep/k_spec.hpp).
#include "sweep/k_spec.hpp"

#include <cctype>

#include "gmmdiff/error.hpp"

namespace gmmdiff {
namespace {

/// The text without its blanks: " d + 2 " reads as "d+2".
std::string without_spaces(const std::string& in) {
  std::string s;
  for (char ch : in)
    if (!std::isspace(static_cast<unsigned char>(ch))) s += ch;
  return s;
}

/// A whole signed decimal integer (std::stoi on all of t); false when t is anything else.
bool parse_whole_int(const std::string& t, int& out) {
  if (t.empty()) return false;
  std::size_t used = 0;
  try {
    out = std::stoi(t, &used);
  } catch (...) {
    return false;
  }
  return used == t.size();
}

/// "d", "4d", "4*d", "d+1", "2d-1" (s holds no blanks and a 'd' at dpos) into k; false when malformed.
bool parse_linear(const std::string& s, std::size_t dpos, KSpec& k) {
  std::string m = s.substr(0, dpos), rest = s.substr(dpos + 1);
  if (!m.empty() && m.back() == '*') m.pop_back();
  if (m.empty())
    k.mult = 1;
  else if (!parse_whole_int(m, k.mult) || k.mult < 1)
    return false;
  if (rest.empty()) return true;
  if (rest[0] != '+' && rest[0] != '-') return false;
  return parse_whole_int(rest, k.add);
}

/// "8", "d", "4d", "d+1", "2d-1": the form that groups across d compare.
std::string canonical_text(const KSpec& k) {
  if (k.mult == 0) return std::to_string(k.add);
  std::string t = (k.mult == 1 ? "" : std::to_string(k.mult)) + "d";
  if (k.add > 0) t += "+" + std::to_string(k.add);
  if (k.add < 0) t += std::to_string(k.add);
  return t;
}

}  // namespace

KSpec KSpec::constant(int k) {
  KSpec s;
  s.add = k;
  s.text = std::to_string(k);
  return s;
}

KSpec KSpec::parse(const std::string& in, const std::string& where) {
  const std::string s = without_spaces(in);
  KSpec k;
  const auto dpos = s.find('d');
  const bool ok = !s.empty() && (dpos == std::string::npos ? parse_whole_int(s, k.add) : parse_linear(s, dpos, k));
  if (!ok)
    throw Error(where + ": K \"" + in +
                "\" is not an integer or a linear expression in d (e.g. 8, \"d\", \"d+1\", \"4d\")");
  k.text = canonical_text(k);
  return k;
}

}  // namespace gmmdiff
