// gmmdiff (private to host/report/): how the report writes numbers and fitted slopes, shared by
// the analysis (the verdicts' one-line reasons) and the rendering (tables, report.md).
#pragma once
#include <cmath>
#include <cstdio>
#include <string>

#include "gmmdiff/report.hpp"

namespace gmmdiff::report_format {

/// x with prec significant digits ("%.*g"); "-" for NaN.
inline std::string fmt(double x, int prec = 3) {
  if (std::isnan(x)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", prec, x);
  return buf;
}
/// x signed with prec decimals ("%+.*f"); "-" for NaN.
inline std::string fmt_fixed(double x, int prec = 2) {
  if (std::isnan(x)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%+.*f", prec, x);
  return buf;
}
/// "b [ci_lo, ci_hi]", "b [no CI]", or "-" when there is no slope.
inline std::string fit_text(const LineFit& f) {
  if (!f.ok()) return "-";
  if (!f.has_ci()) return fmt_fixed(f.b) + " [no CI]";
  return fmt_fixed(f.b) + " [" + fmt_fixed(f.ci_lo) + ", " + fmt_fixed(f.ci_hi) + "]";
}

}  // namespace gmmdiff::report_format
