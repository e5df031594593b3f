// gmmdiff (bounds): the path bound and the exact density over the ranks of a job (docs/scale.md).
// The outer draws (ddpm) or particles (ddim) are cut into fixed blocks (a function of n and the
// kernels' unit alone); each rank runs a contiguous range of blocks, every block's Welford state
// is gathered, and the states are merged in block order on every rank: the figures are the same
// bits for one process (these with dist::serial(), as bounds.hpp's functions are) and for any
// number of ranks. Collective: a refusal or a failure on any rank is every rank's error, reported
// once (dist::collective).
#pragma once
#include "dist/comm.hpp"
#include <nlohmann/json.hpp>

#include "gmmdiff/bounds.hpp"
#include "gmmdiff/bracket.hpp"

namespace gmmdiff {

PathBound path_bound(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                     BoundsKernels& kr, dist::Comm& comm);
ExactDensity exact_density(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                           BoundsKernels& kr, dist::Comm& comm);

/// gmmdiff/bracket.hpp's bracket over the ranks of a job: `gmmdiff bracket` (host/cli) calls this,
/// the one-process form (the Python package's) calls it with dist::serial(), so both give the same
/// figures. The bounds' outer draws or particles and the lower bound's particles are split over the
/// ranks; the exact reference and the checks are rank 0's alone (the other ranks' Bracket has no
/// reference and no checks). Collective (a refusal on any rank is every rank's error).
Bracket bracket(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                const BracketOptions& br, dist::Comm& comm);

/// bracket_json's object (every figure, without "parameters"), for the CLI to add its parameters.
nlohmann::json bracket_json_object(const Bracket& b);

}  // namespace gmmdiff
