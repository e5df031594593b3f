// gmmdiff (sweep): K as a sweep file writes it, an integer or a linear expression in d ("8", "d",
// "4d", "d+1"), resolved at each d of the sweep (docs/sweeps.md).
#pragma once
#include <string>

namespace gmmdiff {

/// K as written in a sweep: an integer, or a linear expression in d: "d", "d+1", "4d", "2d-1".
struct KSpec {
  int mult = 0;      ///< coefficient of d
  int add = 0;       ///< constant
  std::string text;  ///< canonical text ("8", "d", "4d", "d+1")
  int resolve(int d) const { return mult * d + add; }
  /// Parses "8", "d", "d+1", "4d", "4*d", "2d-1"; throws gmmdiff::Error naming `where`.
  static KSpec parse(const std::string& s, const std::string& where);
  static KSpec constant(int k);
};

}  // namespace gmmdiff
