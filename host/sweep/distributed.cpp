// gmmdiff (sweep): a sweep over the ranks of an MPI job (host/sweep/distributed.hpp).
//
// Rank 0's main thread is the dispatcher and the one writer: it alone calls MPI (the job runs at
// MPI_THREAD_FUNNELED) and touches the output directory. Its own runs go to a local worker thread.
// The messages, all small: a worker says READY, then for each RUN i it answers ROW (its row as a
// JSON line) or FAILED (the error's kind and message); STOP ends it.
#include <omp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>

#include "gmmdiff/error.hpp"
#include "io/text.hpp"
#include "sweep/distributed.hpp"
#include "sweep/run_params.hpp"
#include "sweep/sweep_dir.hpp"

namespace gmmdiff {
namespace {

enum Tag : int { kReady = 1, kRun = 2, kStop = 3, kRow = 4, kFailed = 5 };

/// What identifies the expanded sweep on every rank: its text and every run's key (the keys hold
/// the hashes of the model files they read).
std::string fingerprint(const SweepSpec& spec) {
  uint64_t h = text::fnv1a(spec.source);
  for (const auto& p : spec.runs) h = text::fnv1a(p.key(), h);
  return text::hex16(h) + " " + std::to_string(spec.runs.size());
}

/// The chunk of a run on this rank: its share of the backend's memory when ranks share it.
std::size_t chunk_for(const RunParams& p, std::size_t chunk, const Backend& be) {
  if (chunk > 0 || dist::ranks_sharing(be.name()) <= 1) return chunk;
  return dist::rank_chunk_rows(be, run_shape(build_target(p), p.precision, p.seed), chunk);
}

/// An exception as the FAILED message carries it: the class's letter, then the message.
std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const ResourceError& x) {
    return std::string("R") + x.what();
  } catch (const Error& x) {
    return std::string("E") + x.what();
  } catch (const std::bad_alloc&) {
    return "Rout of memory (try a smaller \"chunk\" or n)";
  } catch (const std::exception& x) {
    return std::string("I") + x.what();
  } catch (...) {
    return "Ian unknown exception";
  }
}

/// The exception a FAILED message from rank r describes, naming the rank.
std::exception_ptr rebuild(const std::string& msg, int r, int size) {
  const std::string what = "rank " + std::to_string(r) + " of " + std::to_string(size) + ": " + msg.substr(1);
  switch (msg.empty() ? 'I' : msg[0]) {
    case 'R': return std::make_exception_ptr(ResourceError(what));
    case 'E': return std::make_exception_ptr(Error(what));
    default: return std::make_exception_ptr(std::runtime_error(what));
  }
}

/// Rank 0's runs, on a thread of their own while the main thread dispatches and writes.
class LocalWorker {
 public:
  LocalWorker(const SweepSpec& spec, std::size_t chunk, const std::map<std::string, std::unique_ptr<Backend>>& backends,
              std::function<void()> wake)
      : spec_(spec), chunk_(chunk), backends_(backends), wake_(std::move(wake)), threads_(omp_get_max_threads()),
        thread_([this] { loop(); }) {}
  ~LocalWorker() {
    {
      std::lock_guard<std::mutex> g(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool busy() const { return busy_; }
  void give(std::size_t i) {
    {
      std::lock_guard<std::mutex> g(m_);
      job_ = i;
      busy_ = true;
    }
    cv_.notify_all();
  }
  /// The finished run's index and its row or error, once.
  std::optional<std::pair<std::size_t, std::pair<std::optional<SweepRow>, std::exception_ptr>>> take() {
    std::lock_guard<std::mutex> g(m_);
    if (!result_) return std::nullopt;
    auto r = std::move(result_);
    result_.reset();
    busy_ = false;
    return r;
  }

 private:
  void loop() {
    omp_set_num_threads(threads_);  // this rank's share of the cores, as on the main thread
    for (;;) {
      std::size_t i = 0;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || job_.has_value(); });
        if (stop_) return;
        i = *job_;
        job_.reset();
      }
      std::optional<SweepRow> row;
      std::exception_ptr err;
      try {
        const RunParams& p = spec_.runs[i];
        Backend& be = *backends_.at(p.backend);
        row = run_one(p, chunk_for(p, chunk_, be), be);
      } catch (...) {
        err = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> g(m_);
        result_.emplace(i, std::make_pair(std::move(row), err));
      }
      wake_();
    }
  }

  const SweepSpec& spec_;
  std::size_t chunk_;
  const std::map<std::string, std::unique_ptr<Backend>>& backends_;
  std::function<void()> wake_;
  int threads_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false, busy_ = false;
  std::optional<std::size_t> job_;
  std::optional<std::pair<std::size_t, std::pair<std::optional<SweepRow>, std::exception_ptr>>> result_;
  std::thread thread_;  // last: starts once everything above is set
};

/// Rank 0: hands out the runs still to do, lowest index first, to whichever rank is free, and
/// records each row as it comes. Returns the first failure (null when there was none).
std::exception_ptr dispatch(const SweepSpec& spec, std::size_t chunk,
                            const std::map<std::string, std::unique_ptr<Backend>>& backends, SweepDir& dir,
                            dist::Comm& comm) {
  std::deque<std::size_t> todo;
  for (std::size_t i = 0; i < spec.runs.size(); ++i)
    if (!dir.done(i)) todo.push_back(i);
  std::exception_ptr failure;
  auto fail = [&](std::exception_ptr e) {
    if (!failure) failure = std::move(e);
  };
  auto record = [&](SweepRow row, std::size_t i) {
    try {
      dir.record(std::move(row), i);
    } catch (...) {
      fail(std::current_exception());
    }
  };
  // The next run for a rank that is free, or nothing: all given out, or a failure stops the sweep.
  auto next = [&]() -> std::optional<std::size_t> {
    if (failure || todo.empty()) return std::nullopt;
    const std::size_t i = todo.front();
    todo.pop_front();
    return i;
  };

  std::mutex m;
  std::condition_variable cv;
  bool woken = false;
  LocalWorker local(spec, chunk, backends, [&] {
    {
      std::lock_guard<std::mutex> g(m);
      woken = true;
    }
    cv.notify_all();
  });
  int remote = comm.size() - 1;  // ranks still working (not yet sent STOP)
  bool local_open = true;        // the local worker may still get runs
  for (;;) {
    bool progressed = false;
    if (auto done = local.take()) {
      progressed = true;
      if (done->second.second) fail(done->second.second);
      else record(std::move(*done->second.first), done->first);
    }
    if (local_open && !local.busy()) {
      if (const auto i = next()) local.give(*i);
      else local_open = false;
    }
    while (auto msg = comm.poll()) {
      progressed = true;
      if (msg->tag == kRow) {
        const std::size_t nl = msg->bytes.find('\n');
        try {
          const std::size_t i = std::stoull(msg->bytes.substr(0, nl));
          record(parse_row(msg->bytes.substr(nl + 1)), i);
        } catch (...) {
          fail(std::current_exception());
        }
      } else if (msg->tag == kFailed) {
        fail(rebuild(msg->bytes, msg->from, comm.size()));
      }
      // READY, ROW and FAILED all say that the rank is free.
      if (const auto i = next()) {
        comm.send(msg->from, kRun, std::to_string(*i));
      } else {
        comm.send(msg->from, kStop, "");
        --remote;
      }
    }
    if (remote == 0 && !local_open && !local.busy()) break;
    if (!progressed) {  // nothing came: wait for the local run or the next poll
      std::unique_lock<std::mutex> lk(m);
      cv.wait_for(lk, std::chrono::milliseconds(2), [&] { return woken; });
      woken = false;
    }
  }
  return failure;
}

/// A rank other than 0: runs what it is given until told to stop.
void work(const SweepSpec& spec, std::size_t chunk, const std::map<std::string, std::unique_ptr<Backend>>& backends,
          dist::Comm& comm) {
  comm.send(0, kReady, "");
  for (;;) {
    const dist::Comm::Message msg = comm.receive();
    if (msg.tag == kStop) return;
    if (msg.tag != kRun) continue;
    const std::size_t i = std::stoull(msg.bytes);
    try {
      const RunParams& p = spec.runs.at(i);
      Backend& be = *backends.at(p.backend);
      const SweepRow row = run_one(p, chunk_for(p, chunk, be), be);
      comm.send(0, kRow, std::to_string(i) + "\n" + row_to_json(row));
    } catch (...) {
      comm.send(0, kFailed, describe(std::current_exception()));
    }
  }
}

}  // namespace

SweepOutcome run_sweep(const SweepSpec& spec, const SweepRunOptions& opt, const SweepCallbacks& cb,
                       dist::Comm& comm) {
  if (comm.size() == 1) return run_sweep(spec, opt, cb);
  const std::vector<std::string> prints = comm.all_gather(fingerprint(spec));
  std::map<std::string, std::unique_ptr<Backend>> backends;
  std::unique_ptr<SweepDir> dir;
  dist::collective(comm, [&] {
    for (int r = 1; r < comm.size(); ++r)
      if (prints[r] != prints[0])
        throw Error("rank " + std::to_string(r) + " expanded a different sweep than rank 0 (" + prints[r] + " vs " +
                    prints[0] + "): do its model and schedule files differ?");
    if (opt.out_dir.empty()) throw Error("sweep: no output directory");
    backends = make_backends(spec, opt.threads);
    if (comm.root()) {
      dir = std::make_unique<SweepDir>(spec, opt.out_dir, cb);
      if (cb.on_note)
        cb.on_note(std::to_string(comm.size()) + " ranks: each run goes to the next free rank; rank 0 writes the rows");
    }
  });
  std::exception_ptr failure;
  if (comm.root()) failure = dispatch(spec, spec.chunk, backends, *dir, comm);
  else work(spec, spec.chunk, backends, comm);
  SweepOutcome out;
  dist::collective(comm, [&] {
    if (failure) std::rethrow_exception(failure);
    if (comm.root()) out = dir->finish();
  });
  return out;
}

}  // namespace gmmdiff
