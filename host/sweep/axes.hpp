// gmmdiff (sweep): the axes of one grid of a sweep file, read value by value into typed lists
// (docs/sweeps.md, "Axes"). Model files are loaded here, so that a bad one stops the sweep at once.
#pragma once
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmmdiff/sweep.hpp"
#include "gmmdiff/tv.hpp"
#include "gmmdiff/types.hpp"
#include "sweep/k_spec.hpp"
#include "sweep/parse_context.hpp"

namespace gmmdiff::sweep_parse {

/// One entry of the "family" axis: a preset (with optional K, radius, full_rank, label), or a
/// model file, which fixes d, K, the means and the sd.
struct FamilyEntry {
  std::string label, preset, model_file, model_hash;
  std::shared_ptr<const Mixture> model;  ///< the model file, loaded once (InputCache)
  std::vector<KSpec> K;        ///< family override (empty: the sweep's K axis)
  std::vector<double> radius;  ///< family override
  bool full_rank = false;
  // model files: fixed shape
  int model_d = 0, model_K = 0;
  double model_sd = 0, model_radius = 0;
};

/// One entry of the "schedule" axis.
struct ScheduleEntry {
  std::string name, file, kind = "auto";
  double c0 = 2.0, c1 = 10.0;
  std::shared_ptr<const Schedule> loaded;  ///< a file's schedule, loaded once (InputCache): it fixes T
  std::string hash;                        ///< hash_schedule(*loaded)
};

/// Every axis of one grid (the top level merged with the grid's overrides), defaults filled in.
struct GridAxes {
  std::vector<FamilyEntry> families;
  std::vector<double> sds, radii, epss;
  std::vector<uint64_t> model_seeds, ns, seeds;
  std::vector<int> ds, Ts, stops;
  std::vector<KSpec> Ks;  ///< empty: each family's own default
  std::vector<ScoreErrorKind> errs;
  std::vector<SamplerKind> samplers;
  std::vector<double> etas;                 ///< ddim-song's eta (collapses to 0 for the other samplers)
  std::vector<ErrorProfile> profiles;       ///< score-error time profiles (collapse to uniform without an error)
  std::vector<std::string> bias_directions; ///< "random" | "means" | "v1,...,vd" (bias only)
  std::vector<Variance> variances;
  std::vector<Precision> precisions;
  std::vector<ScheduleEntry> schedules;
  std::vector<std::string> backends;
  int eps_samples = 1024;
  bool quantities = false;
  TvOptions tv;               ///< tv.files: the file: statistics' arrays, loaded once
  std::string tv_files_hash;  ///< hash_arrays of them ("" when there are none)
  RunBounds bounds;           ///< "bounds" (off when absent)
  std::set<std::string> given;  ///< the axes this grid's JSON names (its own or the top level's)
};

/// Reads and checks the axes of one grid, in a fixed order (the first bad value is the error).
GridAxes read_grid_axes(const ParseContext& c, const json& grid);

}  // namespace gmmdiff::sweep_parse
