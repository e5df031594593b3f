// gmmdiff: noise schedules alpha_1..alpha_T, always in double (THEORY.md, Schedules).
#pragma once
#include <string>
#include <vector>

namespace gmmdiff {

struct Schedule {
  std::string name;
  int T = 0;
  std::vector<double> alpha;  ///< [T + 1], alpha[0] unused (1), alpha[t] for t = 1..T
  std::vector<double> abar;   ///< [T + 1], abar[0] = 1, abar[t] = prod_{i<=t} alpha_i
  /// 1 - abar[t] computed without cancellation (abar can be within 1e-16 of 1).
  std::vector<double> one_minus_abar;  ///< [T + 1]
};

/// The largest T accepted (the schedule alone then takes 240 MB).
constexpr int kMaxSteps = 10000000;

struct ScheduleParams {
  std::string name = "lcw";  ///< lcw | li-yan | linear | cosine | file
  int T = 1000;
  double c0 = 2.0;
  double c1 = 10.0;
  std::string file;  ///< for name == "file": JSON {"alpha": [...]} or {"abar": [...]}, or text/.npy of values
  std::string file_kind = "auto";  ///< alpha | abar | auto (JSON key decides; text: monotone decreasing -> abar)
};

/// Builds and checks a schedule: alpha_t in (0, 1], abar strictly positive and non-increasing.
Schedule make_schedule(const ScheduleParams& p);

/// 1 - alpha_t = (abar_{t-1} - abar_t) / abar_{t-1} without cancellation: from the accurate
/// 1 - abar while abar_{t-1} >= 1/2 (alpha_t can be within 1e-21 of 1 there), from abar itself
/// below (where 1 - abar_{t-1} and 1 - abar_t both round to 1 once abar < 1e-16). Exactly 0 when
/// abar_t = abar_{t-1}: the step is an identity.
double one_minus_alpha(const Schedule& s, int t);
const std::vector<std::string>& schedule_names();

}  // namespace gmmdiff
