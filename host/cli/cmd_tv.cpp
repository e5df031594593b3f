// gmmdiff tv: the TV of a sample (.npy) against the target, through statistics (docs/tv.md).
// Prints a table (one row per statistic, then the largest); --json writes the report atomically
// (its keys and values: tv_json, as Python's gmmdiff.tv returns them).
// The sample is streamed from the file in chunks (tv_of_npy): memory does not grow with n.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "io/atomic_file.hpp"
#include "cli/command.hpp"
#include "cli/common.hpp"
#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/tv.hpp"
#include "tv/distributed.hpp"

namespace gmmdiff::cli {
namespace {

struct TvState {
  ModelArgs model;
  std::string sample, against;
  TvOptions opt;
  std::string backend = "auto";
  int threads = 0;
  std::size_t chunk = 0;
  std::string json;
  CLI::App* app = nullptr;  ///< the subcommand: its options looked up by name (given)
};

std::string fmt(double x, int prec = 5) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, x);
  return b;
}

void print_table(std::ostream& os, const TvReport& r, bool against) {
  char line[320];
  std::snprintf(line, sizeof line, "%-12s %4s %6s  %-9s %-9s %-9s %-21s %-8s %-9s %-21s %s\n", "stat", "dims", "bins",
                "tv", "tv_corr", "floor", "CI95", "resolved", "kl_mm", "KL CI95", "masses");
  os << line;
  for (const auto& s : r.stats) {
    const std::string ci = "[" + fmt(s.ci_lo) + ", " + fmt(s.ci_hi) + "]";
    const std::string kci = "[" + fmt(s.kl_ci_lo) + ", " + fmt(s.kl_ci_hi) + "]";
    const std::string target = s.exact_target ? "exact"
                               : against      ? "2nd sample m=" + std::to_string(s.reference_n)
                                              : "ref n=" + std::to_string(s.reference_n);
    std::snprintf(line, sizeof line, "%-12s %4d %6d  %-9s %-9s %-9s %-21s %-8s %-9s %-21s %s\n", s.name.c_str(), s.dims,
                  s.bins, fmt(s.tv).c_str(), fmt(s.tv_corrected).c_str(), fmt(s.floor).c_str(), ci.c_str(),
                  s.resolved ? "yes" : "no", fmt(s.kl_mm).c_str(), kci.c_str(), target.c_str());
    os << line;
  }
  const std::string X = against ? "X" : "X_0", Y = "Y";
  const StatResult& b = r.max();
  os << "max: " << b.name << "  tv_corrected = " << fmt(b.tv_corrected) << "  (tv " << fmt(b.tv) << ", floor "
     << fmt(b.floor) << ", CI95 [" << fmt(b.ci_lo) << ", " << fmt(b.ci_hi) << "], "
     << (b.resolved ? "resolved" : "NOT resolved from the floor") << "): a lower bound on TV(" << X << ", " << Y
     << ") of the binned statistic\n";
  if (r.stats.size() > 1)
    os << "selection: the largest of " << r.stats.size() << " statistics, whose CI does not account for the choice; "
       << "jointly over all " << r.stats.size() << " (Bonferroni) the lower end is " << fmt(b.ci_lo_joint) << ": TV("
       << X << ", " << Y << ") >= " << fmt(b.ci_lo_joint) << " at 97.5% confidence after the choice\n";
  const StatResult& k = r.max_kl();
  os << "max KL: " << k.name << "  kl_mm = " << fmt(k.kl_mm) << "  (plug-in " << fmt(k.kl) << ", CI95 ["
     << fmt(k.kl_ci_lo) << ", " << fmt(k.kl_ci_hi) << "]): a lower bound on KL(" << Y << " || " << X
     << ") of the binned statistic (Miller-Madow corrected; the same selection caveat)\n";
}

void report(const TvState& st, const Mixture& target, const TvReport& r, const std::string& backend, int ranks);

Runner setup(CLI::App& sub) {
  auto st = std::make_shared<TvState>();
  sub.add_option("sample", st->sample, "Sample .npy (n x d, float32 or float64)")->required();
  st->model.add(sub);
  st->opt.stats = kCliStats;
  sub.add_option("--stat", st->opt.stats,
                 "Statistics, comma-separated: means[:r], means2d, meansperp, random:M, axes[:m], file:PATH.npy, "
                 "radial[:0], logp")
      ->capture_default_str();
  sub.add_option("--against", st->against,
                 "Compare with a second sample .npy instead of the target's laws (the model fixes the statistics and "
                 "bins; both samples' noise is in the floor and the CI)");
  sub.add_option("--bins", st->opt.bins, "Bins per 1-D histogram (0: clamp(ceil(n^(1/3)), 8, 1000))")
      ->capture_default_str();
  sub.add_option("--bootstrap", st->opt.bootstrap, "Bootstrap replicates for the CI and the bias correction")
      ->capture_default_str();
  sub.add_option("--seed", st->opt.seed, "Seed of the random directions, the bootstrap and the reference sample")
      ->capture_default_str();
  sub.add_option("--reference-n", st->opt.reference_n,
                 "Exact reference sample size where a target law is not closed-form (0: the sample's n)");
  sub.add_option("--backend", st->backend, "cpu | cuda | auto")->capture_default_str();
  sub.add_option("--threads", st->threads, "CPU threads (0: all)");
  sub.add_option("--chunk", st->chunk,
                 "Sample rows read and binned per chunk (0: 64 MiB of doubles, as memory allows; exact otherwise)")
      ->capture_default_str();
  sub.add_option("--json", st->json, "Also write the report as JSON to this file (atomically)");
  st->app = &sub;
  return [st]() {
    // Under MPI every rank bins its rows and the counts are summed (docs/scale.md); the checks are
    // every rank's, an error is reported once (dist::collective), and rank 0 alone writes.
    dist::Comm& comm = dist::world();
    Mixture target;
    std::unique_ptr<NpyReader> sample, against;
    std::unique_ptr<Backend> be;
    dist::collective(comm, [&] {
      std::vector<std::string> inputs{st->sample};  // the files the run reads: --json may replace none
      if (!st->against.empty()) {
        inputs.push_back(st->against);
        // The second sample is the reference of every statistic: no reference sample is drawn.
        GMMDIFF_EXPECTS(!given(st->app, "--reference-n"),
                        "--reference-n does not apply with --against (the second sample is every statistic's "
                        "reference)");
      }
      target = st->model.build(st->opt.seed, &inputs);
      for (const std::string& f : stat_files(st->opt.stats)) inputs.push_back(f);
      if (!st->json.empty()) check_output_file(st->json, "--json", inputs);  // before the work, not after
      // Opened and checked (header, size, shape) before the backend is made; the values are
      // streamed chunk by chunk by tv_of_npy, never held whole.
      sample = std::make_unique<NpyReader>(st->sample);
      check_tv_sample(*sample, target.d);
      if (!st->against.empty()) {
        if (comm.size() > 1) throw Error("--against runs in one process (not under mpirun with several ranks)");
        against = std::make_unique<NpyReader>(st->against);
        check_tv_sample(*against, target.d);
      }
      be = make_backend(st->backend, st->threads);
    });
    const TvReport r = against ? tv_of_npy_against(target, *sample, *against, st->opt, *be, st->chunk)
                               : tv_of_npy(target, *sample, st->opt, *be, st->chunk, comm);
    dist::on_root(comm, [&] { report(*st, target, r, be->name(), comm.size()); });
    return 0;
  };
}

/// The table on stdout and the --json file (rank 0 alone under MPI).
void report(const TvState& st, const Mixture& target, const TvReport& r, const std::string& backend, int ranks) {
  std::ostringstream os;
  os << "gmmdiff tv: " << st.sample << ": n = " << r.n << ", d = " << target.d << ", K = " << target.K
     << " (backend " << backend << (ranks > 1 ? ", " + std::to_string(ranks) + " ranks" : std::string()) << ")\n";
  const bool against = !st.against.empty();
  if (against) {
    os << "against: " << st.against << ": m = " << r.against_n << " rows; the masses are its frequencies, so both "
       << "samples' noise is in the floor and the CI; the model fixes the statistics and bins\n";
    if (r.against_nonfinite > 0) {
      os << "non-finite rows: " << r.against_nonfinite << " of " << r.against_n << " rows of " << st.against
         << " hold NaN or Inf; they are excluded\n";
      std::cerr << "gmmdiff: warning: " << st.against << ": " << r.against_nonfinite << " of " << r.against_n
                << " rows hold NaN or Inf (excluded)\n";
    }
  }
  if (r.nonfinite > 0) {
    os << "non-finite rows: " << r.nonfinite << " of " << r.n << " hold NaN or Inf; they are excluded and every "
       << "figure refers to the " << (r.n - r.nonfinite) << " finite rows\n";
    std::cerr << "gmmdiff: warning: " << st.sample << ": " << r.nonfinite << " of " << r.n
              << " rows hold NaN or Inf (excluded; TV refers to the finite rows)\n";
  }
  for (const auto& note : r.notes) os << "note: " << note << "\n";
  print_table(os, r, against);

  if (!st.json.empty())
    write_file_atomic(st.json, tv_json(r, target, st.opt, backend, st.sample,
                                       against ? std::optional<std::string>(st.against) : std::nullopt) +
                                   "\n");
  std::cout << os.str() << std::flush;
}

const Registrar reg("tv", "TV of a sample against the target, through statistics, with floor and CI", 20, setup,
                    Ranks::kAll);

}  // namespace
}  // namespace gmmdiff::cli
