// gmmdiff (sweep): what a run builds from its parameters: the preset's and the schedule's
// parameters and the target mixture (the same for parse_sweep's checks and for the run itself).
#pragma once
#include "gmmdiff/model.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/sweep.hpp"

namespace gmmdiff {

/// The preset of a preset run (name, d, K, radius, sd, model seed).
PresetParams preset_params(const RunParams& p);
/// The schedule of a run (name, T, c0, c1, file and the kind of its values).
ScheduleParams schedule_params(const RunParams& p);
/// The target: the model file when the run has one, else the preset.
Mixture build_target(const RunParams& p);

}  // namespace gmmdiff
