// gmmdiff (tv): the reference sample and a sampler's run binned over the ranks of a job
// (host/tv/distributed.hpp; tv_of_npy over ranks is in sample_driver.cpp, beside one process's).
#include "tv/distributed.hpp"

#include "gmmdiff/error.hpp"

namespace gmmdiff {

void prepare_reference(TvPlan& plan, Backend& be, Precision precision, dist::Comm& comm) {
  // logp's edges: every rank draws the same pilot sample (a function of the seed), so all agree.
  dist::collective(comm, [&] { plan.prepare_edges(be, precision); });
  const uint64_t m = plan.reference_rows();
  if (m == 0) return;
  const dist::Range mine = dist::split_range(m, comm.rank(), comm.size());
  HistogramCounts counts;
  dist::collective(comm, [&] { counts = plan.reference_counts(be, precision, mine.first, mine.count); });
  dist::sum_counts(comm, counts);
  dist::collective(comm, [&] { plan.set_reference(counts); });
}

TvReport tv_of_run(const Mixture& target, const Schedule& s, SampleOptions opt, TvPlan& plan, Backend& be,
                   dist::Comm& comm, RunSummary* summary) {
  prepare_reference(plan, be, opt.precision, comm);
  const dist::Range mine = dist::split_range(opt.n, comm.rank(), comm.size());
  opt.first = mine.first;
  opt.count = mine.count;
  if (!comm.root()) {  // one measurement of eps_score (rank 0's), one progress line (rank 0's share)
    opt.eps_samples = 0;
    opt.progress = nullptr;
  }
  TvSink sink(plan, opt.precision);
  RunSummary sum;
  dist::collective(comm, [&] { sum = run_sampler(target, s, opt, be, sink); });
  HistogramCounts counts = sink.counts();
  dist::sum_counts(comm, counts);
  TvReport report;
  dist::on_root(comm, [&] { report = plan.evaluate(counts); });
  if (summary) *summary = sum;
  return report;
}

}  // namespace gmmdiff
