// gmmdiff (tv): TV estimates split over the ranks of a job (docs/scale.md). Each rank bins its
// contiguous rows of the sample and its share of the exact reference sample; the integer counts
// are summed exactly, so rank 0 evaluates the same counts, hence the same figures bit for bit, as
// one process over every row. With the serial Comm these are the functions of tv.hpp.
#pragma once
#include <cstddef>

#include "dist/comm.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/tv.hpp"

namespace gmmdiff {

/// plan.prepare_reference(be, precision), the reference sample split over the ranks of comm.
/// Collective: every rank ends with the same plan.
void prepare_reference(TvPlan& plan, Backend& be, Precision precision, dist::Comm& comm);

/// tv_of_npy over the ranks of comm: every rank opened the same file (`sample`, at its first row)
/// and reads only its own rows. Rank 0 evaluates and returns the report; the other ranks return an
/// empty TvReport. Collective; an error on any rank is every rank's (dist::collective).
TvReport tv_of_npy(const Mixture& target, NpyReader& sample, const TvOptions& opt, Backend& be,
                   std::size_t chunk_rows, dist::Comm& comm);

/// A run of the sampler (opt: all of its n particles) binned where it lies for plan's statistics,
/// over the ranks of comm: the reference sample split as in prepare_reference, rank r samples its
/// range of the particles (each particle a function of its index), the counts are summed exactly,
/// and rank 0 returns the report the one-process run gives; the other ranks an empty TvReport.
/// eps_score is measured, and opt.progress called, on rank 0 only. summary: this rank's.
TvReport tv_of_run(const Mixture& target, const Schedule& s, SampleOptions opt, TvPlan& plan, Backend& be,
                   dist::Comm& comm, RunSummary* summary = nullptr);

}  // namespace gmmdiff
