// gmmdiff sample: draw Y_1 (or Y_0) from the DDPM/DDIM sampler with the exact mixture score and
// write it as an (n, d) .npy, atomically; optional snapshots of chosen steps. Under MPI the ranks
// split the particles and write one file together (docs/scale.md).
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "cli/command.hpp"
#include "cli/common.hpp"
#include "dist/comm.hpp"
#include "dist/npy_out.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/quantities.hpp"
#include "gmmdiff/sampler.hpp"
#include "cli/progress.hpp"

namespace gmmdiff::cli {
namespace {

struct SampleState {
  ModelArgs model;
  ScheduleArgs schedule;
  SamplerArgs sampler;
  std::string out;
  std::string snapshots;
  bool quiet = false;
};

/// OUT.t<t>.npy: where the snapshot of step t goes (".npy" of OUT dropped first).
std::string snapshot_path(const std::string& out, int t) {
  const std::string stem = out.size() > 4 && out.substr(out.size() - 4) == ".npy" ? out.substr(0, out.size() - 4) : out;
  return stem + ".t" + std::to_string(t) + ".npy";
}

/// Writes the final chunk (and snapshots) of each chunk to .npy files, in order.
class NpySink : public ChunkSink {
 public:
  NpySink(const std::string& out, uint64_t n, int d, bool fp64, const std::vector<int>& snaps)
      : d_(d), fp64_(fp64), main_(out, n, d, fp64) {
    for (int t : snaps) snaps_[t] = std::make_unique<NpyWriter>(snapshot_path(out, t), n, d, fp64);
  }
  void on_chunk(Backend& be) override { write(be, main_); }
  void on_snapshot(Backend& be, int t) override { write(be, *snaps_.at(t)); }
  /// Every output finished (written, synced, closed) before any is put in place: a failure, a full
  /// disk most likely, leaves none of them rather than a main output without its snapshots.
  void commit() {
    main_.finish();
    for (auto& [t, w] : snaps_) w->finish();
    main_.commit();
    for (auto& [t, w] : snaps_) w->commit();
  }
  std::vector<std::string> paths() const {
    std::vector<std::string> p{main_.path()};
    for (auto& [t, w] : snaps_) p.push_back(w->path());
    return p;
  }

 private:
  // In pieces as the backend hands them over (pinned, double-buffered on the GPU: the next piece
  // is copied while this one is written; docs/cuda.md, "Staging").
  void write(Backend& be, NpyWriter& w) {
    be.stream_chunk(static_cast<std::size_t>(d_) * (fp64_ ? 8 : 4), buf_,
                    [&](const void* values, std::size_t, std::size_t rows) { w.append(values, rows); });
  }
  int d_;
  bool fp64_;
  NpyWriter main_;
  std::map<int, std::unique_ptr<NpyWriter>> snaps_;
  std::vector<unsigned char> buf_;
};

/// Under MPI (docs/scale.md): this rank's chunks into the shared files, each at its rows (file 0
/// the output, then the snapshots in the order of snaps).
class SharedNpySink : public ChunkSink {
 public:
  SharedNpySink(dist::SharedNpyOut& files, int d, bool fp64, const std::vector<int>& snaps)
      : files_(files), d_(d), fp64_(fp64), snaps_(snaps) {}
  void on_chunk(Backend& be) override { write(be, files_.file(0)); }
  void on_snapshot(Backend& be, int t) override {
    const auto it = std::find(snaps_.begin(), snaps_.end(), t);
    write(be, files_.file(1 + static_cast<std::size_t>(it - snaps_.begin())));
  }

 private:
  // In pieces as the backend hands them over (as NpySink), each at its particles' rows.
  void write(Backend& be, NpySlices& f) {
    const uint64_t first = be.first();
    be.stream_chunk(static_cast<std::size_t>(d_) * (fp64_ ? 8 : 4), buf_,
                    [&](const void* values, std::size_t row0, std::size_t rows) {
                      f.write_rows(first + row0, values, rows);
                    });
  }
  dist::SharedNpyOut& files_;
  int d_;
  bool fp64_;
  std::vector<int> snaps_;
  std::vector<unsigned char> buf_;
};

/// The run's summary from every rank's: all n particles, the slowest rank's time.
RunSummary combined(dist::Comm& comm, const RunSummary& mine, uint64_t n, int d) {
  const std::vector<std::string> all =
      comm.gather(std::to_string(mine.seconds) + " " + std::to_string(mine.chunks), 0);
  RunSummary s = mine;
  s.n = n;
  s.ranks = comm.size();
  s.chunks = 0;
  s.seconds = 0;
  for (const auto& a : all) {
    double sec = 0;
    std::size_t chunks = 0;
    std::istringstream(a) >> sec >> chunks;
    s.seconds = std::max(s.seconds, sec);
    s.chunks += chunks;
  }
  s.elt_steps_per_s = s.seconds > 0 ? double(n) * d * std::max(s.steps - s.identity_steps, 0) / s.seconds : 0.0;
  return s;
}

/// `mpirun ... gmmdiff sample`: rank r samples its contiguous range of particles (each particle
/// and its noise a function of its index) and writes its rows of one shared .npy at their offset;
/// the files are renamed into place once every rank has written its rows (dist::SharedNpyOut).
int sample_over_ranks(const SampleState& st, dist::Comm& comm) {
  SampleOptions opt;
  Mixture target;
  Schedule sched;
  std::unique_ptr<Backend> be;
  std::vector<std::string> paths;
  dist::collective(comm, [&] {  // the same checks as one process, reported once
    std::vector<std::string> inputs;  // the files the run reads: no output may replace one of them
    opt = st.sampler.build(&inputs);
    target = st.model.build(opt.seed, &inputs);
    sched = st.schedule.build();
    if (st.schedule.p.name == "file") inputs.push_back(st.schedule.p.file);
    opt.snapshot_steps = parse_int_list(st.snapshots, "--snapshot");
    check_sample_options(target, sched, opt);  // a step given twice is refused, as in one process
    check_output_file(st.out, "--out", inputs);
    paths = {st.out};
    for (int t : opt.snapshot_steps) {
      check_output_file(snapshot_path(st.out, t), "--snapshot", inputs);
      paths.push_back(snapshot_path(st.out, t));
    }
    be = make_backend(st.sampler.backend, st.sampler.threads);
    opt.chunk = dist::rank_chunk_rows(*be, run_shape(target, opt.precision, opt.seed), opt.chunk);
  });
  const dist::Range mine = dist::split_range(opt.n, comm.rank(), comm.size());
  opt.first = mine.first;
  opt.count = mine.count;
  if (!comm.root()) opt.eps_samples = 0;  // eps_score is measured once, by rank 0 (it does not depend on the split)
  const bool fp64 = opt.precision == Precision::FP64;
  dist::SharedNpyOut files(comm, paths, opt.n, static_cast<uint64_t>(target.d), fp64);
  SharedNpySink sink(files, target.d, fp64, opt.snapshot_steps);
  RunSummary sum;
  dist::collective(comm, [&] {
    std::unique_ptr<Progress> progress;
    if (comm.root()) {  // rank 0's share stands for the run's progress
      progress = std::make_unique<Progress>("sampling");
      opt.progress = progress->callback();
    }
    sum = run_sampler(target, sched, opt, *be, sink);
    opt.progress = nullptr;
  });
  files.commit();
  const RunSummary all = combined(comm, sum, opt.n, target.d);
  if (comm.root() && !st.quiet) std::cerr << all.one_line() << "\n";
  return 0;
}

Runner setup(CLI::App& sub) {
  auto st = std::make_shared<SampleState>();
  st->model.add(sub);
  st->schedule.add(sub);
  st->sampler.add(sub);
  sub.add_option("-o,--out", st->out, "Output .npy (n x d, float32 or float64)")->required();
  sub.add_option("--snapshot", st->snapshots, "Also write Y_t for these steps, e.g. 256,128 (OUT.t<t>.npy)");
  sub.add_flag("-q,--quiet", st->quiet, "No run summary on stderr");
  return [st]() {
    dist::Comm& comm = dist::world();
    if (comm.kind() == "mpi") return sample_over_ranks(*st, comm);
    std::vector<std::string> inputs;  // the files the run reads: no output may replace one of them
    const SampleOptions base = st->sampler.build(&inputs);
    const Mixture target = st->model.build(base.seed, &inputs);
    const Schedule sched = st->schedule.build();
    if (st->schedule.p.name == "file") inputs.push_back(st->schedule.p.file);
    SampleOptions opt = base;
    opt.snapshot_steps = parse_int_list(st->snapshots, "--snapshot");
    // The options first (an impossible --n is reported as such, not as a disk too small for it),
    // then every output must be creatable before the run: a failure after it would waste the run,
    // and one output committed while another fails would leave a partial result.
    check_sample_options(target, sched, opt);
    check_output_file(st->out, "--out", inputs);
    for (int t : opt.snapshot_steps) check_output_file(snapshot_path(st->out, t), "--snapshot", inputs);
    auto be = make_backend(st->sampler.backend, st->sampler.threads);
    NpySink sink(st->out, opt.n, target.d, opt.precision == Precision::FP64, opt.snapshot_steps);
    RunSummary sum;
    {
      Progress progress("sampling");
      opt.progress = progress.callback();
      sum = run_sampler(target, sched, opt, *be, sink);
      opt.progress = nullptr;
    }
    if (!st->quiet) {
      // eps_Jacobi beside eps_score (quantities.hpp): exact for none and bias, measured for scale,
      // weights and means, undefined for gaussian. Before the outputs are put in place: a refusal
      // (not finite) leaves none of them.
      const EpsJacobi ej = measure_eps_jacobi(target, sched, opt);
      sum.eps_jacobi = ej.value;
      sum.eps_jacobi_defined = ej.defined;
    }
    sink.commit();
    if (!st->quiet) std::cerr << sum.one_line() << "\n";
    return 0;
  };
}

const Registrar reg("sample", "Draw samples with DDPM/DDIM and the exact mixture score; write .npy", 10, setup,
                    Ranks::kAll);

}  // namespace
}  // namespace gmmdiff::cli
