// gmmdiff (sweep): what a run builds from its parameters: the preset's and the schedule's
// parameters and the target mixture (the same for parse_sweep's checks and for the run itself).
#pragma once
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/sweep.hpp"

namespace gmmdiff {

/// The preset of a preset run (name, d, K, radius, sd, model seed).
PresetParams preset_params(const RunParams& p);
/// The schedule of a run (name, T, c0, c1, file and the kind of its values).
ScheduleParams schedule_params(const RunParams& p);
/// The sampler's options of a run (n, sampler, variance, stop, seed, precision, score error,
/// eps_samples; no chunk or progress).
SampleOptions sample_options_of(const RunParams& p);
/// The bounds' options of a run with bounds (n and M; no chunk or progress).
BoundsOptions bounds_options_of(const RunParams& p);
/// The target: the model file when the run has one, else the preset.
Mixture build_target(const RunParams& p);

}  // namespace gmmdiff
