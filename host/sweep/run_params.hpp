// gmmdiff (sweep): what a run builds from its parameters: the preset's and the schedule's
// parameters, the target mixture and the schedule (the same for parse_sweep's checks and for the
// run itself), and the content hashes that key a run's input files.
#pragma once
#include <string>

#include "gmmdiff/bounds.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/sweep.hpp"

namespace gmmdiff {

/// The preset of a preset run (name, d, K, radius, sd, model seed).
PresetParams preset_params(const RunParams& p);
/// The schedule of a run (name, T, c0, c1, file and the kind of its values).
ScheduleParams schedule_params(const RunParams& p);
/// The score error of a run (kind, eps, profile, bias direction).
ScoreError score_error_of(const RunParams& p);
/// The sampler's options of a run (n, sampler, variance, stop, seed, precision, score error,
/// eps_samples; no chunk or progress).
SampleOptions sample_options_of(const RunParams& p);
/// The bounds' options of a run with bounds (n and M; no chunk or progress).
BoundsOptions bounds_options_of(const RunParams& p);
/// The target: the model parse_sweep loaded (p.model), else the model file (refused unless its
/// hash is p.model_hash, when that is set), else the preset.
Mixture build_target(const RunParams& p);
/// The schedule: the file's schedule parse_sweep loaded (p.schedule_loaded), else the file
/// (refused unless its hash is p.schedule_hash, when set), else the family's formula at p.T.
Schedule build_schedule(const RunParams& p);

/// 16 hex digits of FNV-1a of a mixture's shape and values (model_hash).
std::string hash_mixture(const Mixture& m);
/// 16 hex digits of FNV-1a of a schedule's T and alpha_1..alpha_T (schedule_hash).
std::string hash_schedule(const Schedule& s);
/// 16 hex digits of FNV-1a of arrays' shapes and values, in order (tv_files_hash).
std::string hash_arrays(const std::vector<const NpyArray*>& arrays);

}  // namespace gmmdiff
