// gmmdiff (bounds): the path bound and the exact density over the ranks of a job (docs/scale.md).
// The outer draws (ddpm) or particles (ddim) are cut into fixed blocks (a function of n and the
// kernels' unit alone); each rank runs a contiguous range of blocks, every block's Welford state
// is gathered, and the states are merged in block order on every rank: the figures are the same
// bits for one process (these with dist::serial(), as bounds.hpp's functions are) and for any
// number of ranks. Collective: a refusal or a failure on any rank is every rank's error, reported
// once (dist::collective).
#pragma once
#include "dist/comm.hpp"
#include "gmmdiff/bounds.hpp"

namespace gmmdiff {

PathBound path_bound(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                     BoundsKernels& kr, dist::Comm& comm);
ExactDensity exact_density(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                           BoundsKernels& kr, dist::Comm& comm);

}  // namespace gmmdiff
