// gmmdiff sample: draw Y_1 (or Y_0) from the DDPM/DDIM sampler with the exact mixture score and
// write it as an (n, d) .npy, atomically; optional snapshots of chosen steps.
#include <iostream>
#include <map>
#include <memory>

#include "cli/command.hpp"
#include "cli/common.hpp"
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
  void commit() {
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

Runner setup(CLI::App& sub) {
  auto st = std::make_shared<SampleState>();
  st->model.add(sub);
  st->schedule.add(sub);
  st->sampler.add(sub);
  sub.add_option("-o,--out", st->out, "Output .npy (n x d, float32 or float64)")->required();
  sub.add_option("--snapshot", st->snapshots, "Also write Y_t for these steps, e.g. 256,128 (OUT.t<t>.npy)");
  sub.add_flag("-q,--quiet", st->quiet, "No run summary on stderr");
  return [st]() {
    const SampleOptions base = st->sampler.build();
    const Mixture target = st->model.build(base.seed);
    const Schedule sched = st->schedule.build();
    SampleOptions opt = base;
    opt.snapshot_steps = parse_int_list(st->snapshots, "--snapshot");
    // The options first (an impossible --n is reported as such, not as a disk too small for it),
    // then every output must be creatable before the run: a failure after it would waste the run,
    // and one output committed while another fails would leave a partial result.
    check_sample_options(target, sched, opt);
    check_output_file(st->out, "--out");
    for (int t : opt.snapshot_steps) check_output_file(snapshot_path(st->out, t), "--snapshot");
    auto be = make_backend(st->sampler.backend, st->sampler.threads);
    NpySink sink(st->out, opt.n, target.d, opt.precision == Precision::FP64, opt.snapshot_steps);
    RunSummary sum;
    {
      Progress progress("sampling");
      opt.progress = progress.callback();
      sum = run_sampler(target, sched, opt, *be, sink);
      opt.progress = nullptr;
    }
    sink.commit();
    if (!st->quiet) {
      // eps_Jacobi beside eps_score (quantities.hpp): exact for none and bias, measured for scale,
      // weights and means, undefined for gaussian.
      const EpsJacobi ej = measure_eps_jacobi(target, sched, opt);
      sum.eps_jacobi = ej.value;
      sum.eps_jacobi_defined = ej.defined;
      std::cerr << sum.one_line() << "\n";
    }
    return 0;
  };
}

const Registrar reg("sample", "Draw samples with DDPM/DDIM and the exact mixture score; write .npy", 10, setup);

}  // namespace
}  // namespace gmmdiff::cli
