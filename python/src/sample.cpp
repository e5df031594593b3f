// gmmdiff Python module: sampling (gmmdiff/sampler.hpp run_sampler, gmmdiff/schedule.hpp).
//   sample()         the whole sample as one NumPy array (or a gmmdiff.Array kept where the
//                    backend computes: DLPack, on the GPU for cuda), snapshots optional;
//   sample_chunks()  an iterator of chunks in particle order, in bounded memory: run_sampler runs
//                    in a worker thread and hands each chunk over through a queue of one;
//   schedule()       the schedule's alpha_t and abar_t.
// The particles are exactly the CLI's for the same parameters and seed: the same library call,
// whatever the chunk size (which never changes a value).
#include <dlpack/dlpack.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "common.hpp"
#include "core/system.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/quantities.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"

namespace gmmdiff::python {

namespace {

/// Work units (rows x d x (K + 4), about the multiply-adds of one step) of one step on one chunk
/// of the CPU backend when the chunk is automatic: about 0.05 s on 2 loaded cores (0.4 s per
/// step measured for 10^6 x 64 x 20 units), so that a step ends, and Ctrl-C is seen, well
/// within a second. The chunk never changes a value, only how often the progress callback runs.
constexpr double kCpuStepWork = double(1 << 27);
/// Bytes of one chunk of sample_chunks when chunk = 0 (before the CPU cap above).
constexpr double kStreamChunkBytes = double(64 << 20);

/// Everything one run needs, parsed and validated in the CLI's order (SamplerArgs::build, the
/// model, the schedule, check_sample_options).
struct RunRequest {
  std::shared_ptr<const Mixture> target;
  Schedule sched;
  SampleOptions opt;
  std::string backend;
  int threads = 0;
  bool fp64() const { return opt.precision == Precision::FP64; }
  std::size_t row_bytes() const { return static_cast<std::size_t>(target->d) * bytes_of(opt.precision); }
};

RunRequest make_request(py::handle mixture, int64_t n, int64_t T, const std::string& sampler, double eta,
                        const std::string& variance, int stop, uint64_t seed, const std::string& precision,
                        int64_t chunk, const std::string& score_error, double eps, const std::string& error_profile,
                        py::handle error_factors, py::handle bias_direction, int64_t eps_samples,
                        const std::string& backend, int threads, const std::string& schedule, double c0, double c1,
                        py::handle schedule_file, const std::string& schedule_kind, const std::vector<int>& snapshot) {
  RunRequest r;
  SampleOptions& o = r.opt;
  o.n = as_count(n, "--n", "need at least one particle");
  o.sampler = parse_sampler(sampler);
  o.eta = eta;
  o.variance = parse_variance(variance);
  o.stop = stop;
  o.seed = seed;
  o.precision = parse_precision(precision);
  o.chunk = as_count(chunk, "--chunk", "need >= 0; 0: automatic");
  o.score_error.kind = parse_score_error(score_error);
  o.score_error.eps = eps;
  (void)score_error_from_args(o.score_error, error_profile, error_factors, bias_direction);
  // The CLI's words (SamplerArgs::build); check_sample_options holds the upper bound, 2^24.
  GMMDIFF_EXPECTS(eps_samples >= 1 && eps_samples <= INT_MAX, "--eps-samples = ", eps_samples,
                  " (need 1 <= eps-samples <= 16777216)");
  o.eps_samples = static_cast<int>(eps_samples);
  o.snapshot_steps = snapshot;
  r.backend = backend;
  r.threads = threads;
  r.target = as_mixture(mixture);

  r.sched = schedule_from_args(T, schedule, c0, c1, schedule_file, schedule_kind);
  check_sample_options(*r.target, r.sched, o);
  return r;
}

/// The backend, made without the GIL (the CUDA one creates a context).
std::unique_ptr<Backend> backend_for(const RunRequest& r) {
  py::gil_scoped_release nogil;
  return make_backend(r.backend, r.threads);
}

/// The rows per chunk of a run, as run_sampler will use them: the requested chunk, or for an
/// automatic one on the CPU backend at most kCpuStepWork per step (and what memory allows),
/// elsewhere what run_sampler chooses; `cap_rows` > 0 caps an automatic chunk further.
std::size_t chunk_rows_for(const RunRequest& r, const Backend& be, std::size_t cap_rows = 0) {
  // A requested chunk as run_sampler will use it (rounded up to kChunkAlign, at most n), and an
  // impossible one refused now, before any memory is allocated.
  if (r.opt.chunk != 0)
    return choose_chunk_rows(be, run_shape(*r.target, r.opt.precision, r.opt.seed), r.opt.n, r.opt.chunk);
  std::size_t rows = cap_rows;
  if (be.name() == "cpu") {
    const double per_row = double(r.target->d) * (r.target->K + 4.0);
    const auto work_rows = static_cast<std::size_t>(std::max(1.0, kCpuStepWork / per_row));
    rows = rows == 0 ? work_rows : std::min(rows, work_rows);
  }
  const RunShape shape = run_shape(*r.target, r.opt.precision, r.opt.seed);
  if (rows == 0) return choose_chunk_rows(be, shape, r.opt.n, 0);
  rows = std::max(kChunkAlign, rows / kChunkAlign * kChunkAlign);
  const std::size_t max_rows = be.max_chunk_rows(shape);
  // Not even one aligned chunk fits: choose_chunk_rows throws the ResourceError that says so.
  return choose_chunk_rows(be, shape, r.opt.n, max_rows == 0 ? 0 : std::min(rows, max_rows));
}

/// eps_Jacobi of the run's score error beside eps_score, as `gmmdiff sample` prints it
/// (measure_eps_jacobi: exact for none and bias, measured for scale, weights and means, undefined
/// for gaussian). Only when the caller asked for the summary (info): it is extra work.
void add_eps_jacobi(const RunRequest& r, RunSummary& s) {
  py::gil_scoped_release nogil;
  const EpsJacobi ej = measure_eps_jacobi(*r.target, r.sched, r.opt);
  s.eps_jacobi = ej.value;
  s.eps_jacobi_defined = ej.defined;
}

py::dict summary_dict(const RunSummary& s) {
  py::dict d;
  d["n"] = s.n;
  d["d"] = s.d;
  d["K"] = s.K;
  d["T"] = s.T;
  d["sampler"] = s.sampler;
  d["precision"] = s.precision;
  d["score_error"] = std::string(to_string(s.score_error));
  d["seconds"] = s.seconds;
  d["elt_steps_per_s"] = s.elt_steps_per_s;
  d["steps"] = s.steps;
  d["eps_score"] = s.eps_score;
  d["eps_jacobi"] = s.eps_jacobi_defined && !std::isnan(s.eps_jacobi) ? py::object(py::float_(s.eps_jacobi))
                                                                     : py::object(py::none());
  d["eps_jacobi_defined"] = s.eps_jacobi_defined;
  d["eps_seconds"] = s.eps_seconds;
  d["backend"] = s.backend;
  d["device"] = s.device;
  d["path"] = s.path;
  d["chunk_rows"] = s.chunk_rows;
  d["chunks"] = s.chunks;
  d["summary"] = s.one_line();
  return d;
}

/// n x d x bytes without wrapping; ResourceError when it cannot be a size at all.
std::size_t result_bytes(const RunRequest& r) {
  const long double b = static_cast<long double>(r.opt.n) * r.row_bytes();
  if (b > static_cast<long double>(SIZE_MAX / 2))
    throw ResourceError(detail::cat("a sample of n = ", r.opt.n, " x d = ", r.target->d, " (",
                                    to_string(r.opt.precision), ") does not fit in any memory"));
  return static_cast<std::size_t>(b);
}

// ---- gmmdiff.Array: a result kept in the backend's memory, exported through DLPack ----

struct Array {
  std::shared_ptr<ResultMemory> mem;
  int64_t rows = 0, cols = 0;
  bool fp64 = false;
  std::size_t nbytes() const { return static_cast<std::size_t>(rows * cols) * (fp64 ? 8 : 4); }
};

/// What a DLPack capsule owns: the memory (kept alive), the shape and strides the tensor points to.
struct DlpackOwner {
  std::shared_ptr<ResultMemory> mem;
  int64_t shape[2];
  int64_t strides[2];
  DLManagedTensor tensor;
};

void dlpack_deleter(DLManagedTensor* t) { delete static_cast<DlpackOwner*>(t->manager_ctx); }

/// A capsule nobody consumed (still named "dltensor") frees its tensor; a consumer renames it
/// "used_dltensor" and calls the deleter itself when done.
void dlpack_capsule_destructor(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor")) {
    auto* t = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    if (t && t->deleter) t->deleter(t);
  }
}

std::pair<int, int> dlpack_device(const Array& a) {
  return {a.mem->kind() == MemoryKind::Cuda ? static_cast<int>(kDLCUDA) : static_cast<int>(kDLCPU),
          a.mem->device()};
}

py::capsule to_dlpack(const Array& a) {
  auto owner = std::make_unique<DlpackOwner>();
  owner->mem = a.mem;
  owner->shape[0] = a.rows;
  owner->shape[1] = a.cols;
  owner->strides[0] = a.cols;  // in elements, C order
  owner->strides[1] = 1;
  DLTensor& t = owner->tensor.dl_tensor;
  t.data = a.mem->data();
  const auto dev = dlpack_device(a);
  t.device.device_type = static_cast<DLDeviceType>(dev.first);
  t.device.device_id = dev.second;
  t.ndim = 2;
  t.dtype.code = kDLFloat;
  t.dtype.bits = a.fp64 ? 64 : 32;
  t.dtype.lanes = 1;
  t.shape = owner->shape;
  t.strides = owner->strides;
  t.byte_offset = 0;
  owner->tensor.manager_ctx = owner.get();
  owner->tensor.deleter = dlpack_deleter;
  PyObject* cap = PyCapsule_New(&owner->tensor, "dltensor", dlpack_capsule_destructor);
  if (cap == nullptr) throw py::error_already_set();
  owner.release();  // the capsule (or its consumer) owns it now
  return py::reinterpret_steal<py::capsule>(cap);
}

/// The values in host memory as a NumPy array: a view of host memory, a copy of device memory.
py::array to_numpy(const Array& a) {
  if (a.mem->kind() == MemoryKind::Host) return owned_array(a.mem, a.fp64, {a.rows, a.cols});
  std::shared_ptr<ResultMemory> host;
  {
    py::gil_scoped_release nogil;
    host = allocate_host_result(a.nbytes());
    a.mem->copy_to_host(host->data(), 0, a.nbytes());
  }
  return owned_array(std::move(host), a.fp64, {a.rows, a.cols});
}

// ---- the sink of sample(): chunks copied into results at their rows ----

class ResultSink : public ChunkSink {
 public:
  ResultSink(ResultMemory& main, std::map<int, std::shared_ptr<ResultMemory>>& snaps, std::size_t row_bytes)
      : main_(main), snaps_(snaps), row_bytes_(row_bytes) {}
  void on_chunk(Backend& be) override { copy(be, main_); }
  void on_snapshot(Backend& be, int t) override { copy(be, *snaps_.at(t)); }

 private:
  void copy(Backend& be, ResultMemory& dst) {
    const std::size_t offset = static_cast<std::size_t>(be.first()) * row_bytes_;
    GMMDIFF_EXPECTS(offset + be.rows() * row_bytes_ <= dst.bytes(), "internal error: chunk past the result");
    be.copy_chunk_to(dst, offset);
  }
  ResultMemory& main_;
  std::map<int, std::shared_ptr<ResultMemory>>& snaps_;
  std::size_t row_bytes_;
};

py::object sample(py::object mixture, int64_t n, int64_t T, const std::string& sampler, double eta,
                  const std::string& variance, int stop, uint64_t seed, const std::string& precision, int64_t chunk,
                  const std::string& score_error, double eps, const std::string& error_profile,
                  py::object error_factors, py::object bias_direction, int64_t eps_samples, const std::string& backend,
                  int threads, const std::string& schedule, double c0, double c1, py::object schedule_file,
                  const std::string& schedule_kind, const std::vector<int>& snapshot, py::object info,
                  py::object progress, bool keep_on_device) {
  RunRequest r = make_request(mixture, n, T, sampler, eta, variance, stop, seed, precision, chunk, score_error, eps,
                              error_profile, error_factors, bias_direction, eps_samples, backend, threads, schedule, c0,
                              c1, schedule_file, schedule_kind, snapshot);
  if (!info.is_none() && !py::isinstance<py::dict>(info)) fill_info(info, py::dict());  // the TypeError, before work
  Interrupter interrupter(progress);
  std::unique_ptr<Backend> be = backend_for(r);
  r.opt.chunk = chunk_rows_for(r, *be);

  const std::size_t bytes = result_bytes(r);
  std::vector<int> snaps = r.opt.snapshot_steps;
  std::sort(snaps.begin(), snaps.end());
  snaps.erase(std::unique(snaps.begin(), snaps.end()), snaps.end());
  std::shared_ptr<ResultMemory> main;
  std::map<int, std::shared_ptr<ResultMemory>> snap_mem;
  RunSummary sum;
  {
    py::gil_scoped_release nogil;
    // Host memory is only reserved until it is written: refuse what cannot fit before the sampler
    // touches it, rather than let the kernel kill the process later.
    auto check_host = [&]() {
      const long double need = static_cast<long double>(bytes) * (1 + snaps.size());
      const std::size_t avail = mem_available_bytes();
      if (avail > 0 && need > static_cast<long double>(avail))
        throw ResourceError(detail::cat(
            "a sample of n = ", r.opt.n, " x d = ", r.target->d, " (", to_string(r.opt.precision), ") needs ",
            static_cast<unsigned long long>(need / (1 << 20)), " MiB of host memory but ", avail >> 20,
            " MiB are available; use gmmdiff.sample_chunks for bounded memory, or a smaller n"));
    };
    if (!keep_on_device) check_host();
    auto alloc = [&]() -> std::shared_ptr<ResultMemory> {
      return keep_on_device ? be->allocate_result(bytes) : allocate_host_result(bytes);
    };
    main = alloc();
    if (keep_on_device && main->kind() == MemoryKind::Host) check_host();  // the cpu backend's memory
    for (int t : snaps) snap_mem[t] = alloc();
    ResultSink sink(*main, snap_mem, r.row_bytes());
    r.opt.progress = interrupter.callback();
    sum = run_sampler(*r.target, r.sched, r.opt, *be, sink);
    be.reset();  // its chunk memory goes now, not when the caller's results do
    const uint64_t units = r.opt.n * static_cast<uint64_t>(std::max(sum.steps, 1));
    interrupter.check(units, units, true);  // progress sees the end
  }
  if (!info.is_none()) add_eps_jacobi(r, sum);
  fill_info(info, summary_dict(sum));

  const int64_t rows = static_cast<int64_t>(r.opt.n), cols = r.target->d;
  auto wrap = [&](std::shared_ptr<ResultMemory> mem) -> py::object {
    if (keep_on_device) return py::cast(Array{std::move(mem), rows, cols, r.fp64()});
    return owned_array(std::move(mem), r.fp64(), {rows, cols});
  };
  py::object y = wrap(std::move(main));
  if (snapshot.empty()) return y;
  py::dict by_step;
  for (auto& [t, mem] : snap_mem) by_step[py::int_(t)] = wrap(mem);
  return py::make_tuple(y, by_step);
}

// ---- sample_chunks(): run_sampler in a worker thread, chunks handed over one at a time ----

/// Thrown inside the worker to stop run_sampler when the iterator is closed.
struct Cancelled {};

class ChunkStream {
 public:
  ChunkStream(RunRequest r, std::unique_ptr<Backend> be, py::object info)
      : req_(std::move(r)), be_(std::move(be)), info_(std::move(info)) {}
  ~ChunkStream() { stop(false); }
  ChunkStream(const ChunkStream&) = delete;
  ChunkStream& operator=(const ChunkStream&) = delete;

  /// The next chunk (rows, d) in particle order; StopIteration after the last. Waits without
  /// the GIL, looking at pending signals every kCheckIntervalSeconds: Ctrl-C stops the worker
  /// and raises KeyboardInterrupt here.
  py::object next() {
    if (finished_) throw py::stop_iteration();
    if (!thread_.joinable()) thread_ = std::thread([this] { produce(); });
    for (;;) {
      std::shared_ptr<ResultMemory> mem;
      std::size_t rows = 0;
      bool done = false;
      {
        py::gil_scoped_release nogil;
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait_for(lk, std::chrono::duration<double>(kCheckIntervalSeconds),
                     [&] { return !ready_.empty() || done_; });
        if (!ready_.empty()) {
          mem = std::move(ready_.front().first);
          rows = ready_.front().second;
          ready_.pop_front();
          cv_.notify_all();
        } else {
          done = done_;
        }
      }
      if (mem) {
        rows_out_ += rows;
        return owned_array(std::move(mem), req_.fp64(), {static_cast<py::ssize_t>(rows), req_.target->d});
      }
      if (done) {
        stop(true);
        finished_ = true;
        if (error_) std::rethrow_exception(error_);
        if (!info_.is_none()) add_eps_jacobi(req_, summary_);
        fill_info(info_, summary_dict(summary_));
        throw py::stop_iteration();
      }
      if (PyErr_CheckSignals() != 0) {
        py::error_already_set e;  // fetched before the worker is stopped
        stop(true);
        finished_ = true;
        throw e;
      }
    }
  }

  /// Stops the worker (at its next step) and frees what it held; the iterator is then exhausted.
  void close() {
    stop(true);
    finished_ = true;
  }

  uint64_t n() const { return req_.opt.n; }
  int d() const { return req_.target->d; }
  std::size_t chunk_rows() const { return req_.opt.chunk; }
  uint64_t rows_out() const { return rows_out_; }

 private:
  /// The queue holds at most this many finished chunks beside the one the worker fills and the
  /// one the caller holds: memory stays a few chunks whatever n is.
  static constexpr std::size_t kQueueDepth = 1;

  class QueueSink : public ChunkSink {
   public:
    explicit QueueSink(ChunkStream& s) : s_(s) {}
    void on_chunk(Backend& be) override {
      std::shared_ptr<ResultMemory> mem = allocate_host_result(be.rows() * s_.req_.row_bytes());
      be.copy_chunk_to(*mem, 0);
      std::unique_lock<std::mutex> lk(s_.mu_);
      s_.cv_.wait(lk, [&] { return s_.ready_.size() < kQueueDepth || s_.cancel_; });
      if (s_.cancel_) throw Cancelled{};
      s_.ready_.emplace_back(std::move(mem), be.rows());
      s_.cv_.notify_all();
    }

   private:
    ChunkStream& s_;
  };

  void produce() {
    try {
      QueueSink sink(*this);
      SampleOptions opt = req_.opt;
      opt.progress = [this](uint64_t, uint64_t) {
        if (cancel_flag_.load(std::memory_order_relaxed)) throw Cancelled{};
      };
      summary_ = run_sampler(*req_.target, req_.sched, opt, *be_, sink);
    } catch (const Cancelled&) {
    } catch (...) {
      error_ = std::current_exception();
    }
    be_.reset();
    std::lock_guard<std::mutex> lk(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void stop(bool release_gil) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      cancel_ = true;
      cancel_flag_.store(true);
      cv_.notify_all();
    }
    if (thread_.joinable()) {
      if (release_gil && PyGILState_Check()) {
        py::gil_scoped_release nogil;
        thread_.join();
      } else {
        thread_.join();
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    ready_.clear();
  }

  RunRequest req_;
  std::unique_ptr<Backend> be_;
  py::object info_;
  std::thread thread_;
  bool finished_ = false;
  uint64_t rows_out_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<ResultMemory>, std::size_t>> ready_;
  bool done_ = false, cancel_ = false;
  std::atomic<bool> cancel_flag_{false};
  std::exception_ptr error_;
  RunSummary summary_;
};

std::unique_ptr<ChunkStream> sample_chunks(py::object mixture, int64_t n, int64_t T, const std::string& sampler,
                                           double eta, const std::string& variance, int stop, uint64_t seed,
                                           const std::string& precision, int64_t chunk, const std::string& score_error,
                                           double eps, const std::string& error_profile, py::object error_factors,
                                           py::object bias_direction, int64_t eps_samples, const std::string& backend,
                                           int threads, const std::string& schedule, double c0, double c1,
                                           py::object schedule_file, const std::string& schedule_kind,
                                           py::object info) {
  RunRequest r = make_request(mixture, n, T, sampler, eta, variance, stop, seed, precision, chunk, score_error, eps,
                              error_profile, error_factors, bias_direction, eps_samples, backend, threads, schedule, c0,
                              c1, schedule_file, schedule_kind, {});
  if (!info.is_none() && !py::isinstance<py::dict>(info)) fill_info(info, py::dict());
  std::unique_ptr<Backend> be = backend_for(r);
  const auto stream_rows = static_cast<std::size_t>(std::max(1.0, kStreamChunkBytes / double(r.row_bytes())));
  r.opt.chunk = chunk_rows_for(r, *be, stream_rows);
  return std::make_unique<ChunkStream>(std::move(r), std::move(be), std::move(info));
}

const char* kSampleDoc = R"doc(
Samples the mixture with DDPM or DDIM driven by its exact score (THEORY.md, Samplers), as
`gmmdiff sample`: the same particles, bit for bit, for the same parameters and seed.

mixture: a gmmdiff.Mixture, or the path of a model JSON file. The keyword arguments are the CLI's
options with their defaults: n, T, schedule (lcw, li-yan, linear, cosine, file), c0, c1,
schedule_file, schedule_kind, sampler (ddpm; ddim: the theory's Euler step; ddim-song: Song et al.
2021 as libraries compute it), eta (ddim-song's noise fraction in [0, 1]: 0 deterministic, 1
ddpm's posterior law), variance (beta, posterior, inside), stop (1: Y_1, 0: Y_0), seed, precision
(fp32, fp64), chunk (rows per chunk, 0: automatic; never changes a value), score_error (none,
bias, scale, weights, means, gaussian), eps, error_profile (where over t the error sits: uniform,
front-loaded, back-loaded, file), error_factors (the T factors f(1..T) of eps: the path of a text
file as the CLI's --error-factors, or a sequence of numbers; implies error_profile 'file'),
bias_direction (the bias error's direction: random, means, 'v1,...,vd' or a sequence of d
numbers), eps_samples, backend (cpu, cuda, auto), threads (0: all), snapshot (steps t whose Y_t is
also returned).

Returns an (n, d) float32 (fp64: float64) ndarray that owns its memory. With snapshot, a tuple
(y, {t: Y_t}). With keep_on_device=True, a gmmdiff.Array in the backend's memory instead (GPU
memory for cuda, exported without a copy through DLPack: torch.from_dlpack(y)).
info: a dict that receives the run summary (n, d, K, T, sampler, precision, seconds,
elt_steps_per_s, eps_score, eps_jacobi (None where undefined: gaussian), eps_jacobi_defined,
backend, device, path, chunk_rows, chunks, summary: the CLI's line); eps_Jacobi is measured only
when info is given.
progress: a callable progress(done, total) in particle-steps, called about every 0.1 s and at the end.
The GIL is released while sampling; Ctrl-C raises KeyboardInterrupt within about a step and
frees everything. Errors: ValueError (bad input, the CLI's message), gmmdiff.ResourceError (a
MemoryError: the sample does not fit; see sample_chunks), gmmdiff.NumericalError.)doc";

const char* kChunksDoc = R"doc(
The sample of gmmdiff.sample(...) as an iterator of (rows, d) ndarrays in particle order, in
bounded memory: concatenated, the chunks equal sample(...) with the same arguments bit for bit.
The sampler runs in a worker thread one chunk ahead of the caller; memory holds about four chunks
whatever n is. chunk: rows per chunk (0: about 64 MiB, fewer on the CPU backend so that a step
stays short). info receives the run summary once the last chunk is out. Ctrl-C while waiting
raises KeyboardInterrupt and stops the worker; leaving the loop early (break, close(), the
iterator going away) stops it too.)doc";

}  // namespace

void init_sample(py::module_& m) {
  py::class_<Array>(m, "Array", R"doc(
A sample kept in the memory of the backend that computed it (sample(..., keep_on_device=True)):
GPU memory for the cuda backend, host memory for cpu. It exports itself through DLPack without a
copy (torch.from_dlpack(a), numpy.from_dlpack(a) for host memory, cupy.from_dlpack(a));
numpy() returns the values in host memory (a view for host memory, a copy from the device).)doc")
      .def_property_readonly("shape", [](const Array& a) { return py::make_tuple(a.rows, a.cols); })
      .def_property_readonly("dtype", [](const Array& a) { return a.fp64 ? py::dtype::of<double>() : py::dtype::of<float>(); })
      .def_property_readonly("nbytes", &Array::nbytes)
      .def_property_readonly(
          "device",
          [](const Array& a) {
            return a.mem->kind() == MemoryKind::Cuda ? "cuda:" + std::to_string(a.mem->device()) : std::string("cpu");
          },
          "'cpu' or 'cuda:<ordinal>'.")
      .def("__len__", [](const Array& a) { return a.rows; })
      .def("__dlpack_device__", &dlpack_device, "(device type, ordinal): (1, 0) kDLCPU, (2, i) kDLCUDA.")
      .def(
          "__dlpack__",
          [](const Array& a, py::object stream, py::object max_version, py::object dl_device, py::object copy) {
            (void)stream;       // the values are complete (synchronised) before sample() returns
            (void)max_version;  // a DLPack 0.x capsule, which every version of the protocol accepts
            if (!dl_device.is_none()) {
              const auto want = dl_device.cast<std::pair<int, int>>();
              if (want != dlpack_device(a))
                throw py::buffer_error("gmmdiff.Array lies on " + std::string(a.mem->kind() == MemoryKind::Cuda ? "cuda" : "cpu") +
                                       "; it cannot be exported to another device");
            }
            if (!copy.is_none() && copy.cast<bool>())
              throw py::buffer_error("gmmdiff.Array exports without a copy; use numpy() for a host copy");
            return to_dlpack(a);
          },
          py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
          py::arg("dl_device") = py::none(), py::arg("copy") = py::none(),
          "A DLPack capsule ('dltensor') over the memory, without a copy; the memory lives as long as the consumer's tensor.")
      .def("numpy", &to_numpy, "The values as an ndarray in host memory (a view of host memory, a copy of GPU memory).")
      .def(
          "__array__",
          [](const Array& a, py::object dtype, py::object copy) -> py::object {
            (void)copy;  // host memory: a view (a copy only when dtype asks for another type); device: a copy
            py::array h = to_numpy(a);
            if (dtype.is_none()) return std::move(h);
            return h.attr("astype")(dtype);
          },
          py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def("__repr__", [](const Array& a) {
        return "gmmdiff.Array(shape=(" + std::to_string(a.rows) + ", " + std::to_string(a.cols) +
               "), dtype=" + (a.fp64 ? "float64" : "float32") + ", device=" +
               (a.mem->kind() == MemoryKind::Cuda ? "cuda:" + std::to_string(a.mem->device()) : std::string("cpu")) +
               ")";
      });

  m.def("sample", &sample, py::arg("mixture"), py::kw_only(), py::arg("n") = 1000, py::arg("T") = 1000,
        py::arg("sampler") = "ddpm", py::arg("eta") = 0.0, py::arg("variance") = "beta", py::arg("stop") = 1,
        py::arg("seed") = 0, py::arg("precision") = "fp32", py::arg("chunk") = 0, py::arg("score_error") = "none",
        py::arg("eps") = 0.0, py::arg("error_profile") = "uniform", py::arg("error_factors") = py::none(),
        py::arg("bias_direction") = "random", py::arg("eps_samples") = 1024, py::arg("backend") = "auto",
        py::arg("threads") = 0,
        py::arg("schedule") = "lcw", py::arg("c0") = 2.0, py::arg("c1") = 10.0,
        py::arg("schedule_file") = py::none(), py::arg("schedule_kind") = "auto",
        py::arg("snapshot") = std::vector<int>(), py::arg("info") = py::none(), py::arg("progress") = py::none(),
        py::arg("keep_on_device") = false, kSampleDoc);

  py::class_<ChunkStream>(m, "SampleChunks", "The iterator sample_chunks() returns.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &ChunkStream::next)
      .def("close", &ChunkStream::close, "Stops the sampler and frees its memory; the iterator is then exhausted.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](ChunkStream& s, py::args) { s.close(); })
      .def_property_readonly("n", &ChunkStream::n)
      .def_property_readonly("d", &ChunkStream::d)
      .def_property_readonly("chunk_rows", &ChunkStream::chunk_rows, "Rows per chunk (the last may have fewer).")
      .def_property_readonly("rows_out", &ChunkStream::rows_out, "Rows handed out so far.");

  m.def("sample_chunks", &sample_chunks, py::arg("mixture"), py::kw_only(), py::arg("n") = 1000, py::arg("T") = 1000,
        py::arg("sampler") = "ddpm", py::arg("eta") = 0.0, py::arg("variance") = "beta", py::arg("stop") = 1,
        py::arg("seed") = 0, py::arg("precision") = "fp32", py::arg("chunk") = 0, py::arg("score_error") = "none",
        py::arg("eps") = 0.0, py::arg("error_profile") = "uniform", py::arg("error_factors") = py::none(),
        py::arg("bias_direction") = "random", py::arg("eps_samples") = 1024, py::arg("backend") = "auto",
        py::arg("threads") = 0,
        py::arg("schedule") = "lcw", py::arg("c0") = 2.0, py::arg("c1") = 10.0,
        py::arg("schedule_file") = py::none(), py::arg("schedule_kind") = "auto", py::arg("info") = py::none(),
        kChunksDoc);

  m.def(
      "schedule",
      [](const std::string& name, int64_t T, double c0, double c1, py::object file, const std::string& kind) {
        const Schedule s = schedule_from_args(T, name, c0, c1, file, kind, "name", "file");
        py::dict d;
        d["name"] = s.name;
        d["T"] = s.T;
        d["alpha"] = py::array_t<double>(s.alpha.size(), s.alpha.data());
        d["abar"] = py::array_t<double>(s.abar.size(), s.abar.data());
        d["one_minus_abar"] = py::array_t<double>(s.one_minus_abar.size(), s.one_minus_abar.data());
        return d;
      },
      py::arg("name") = "lcw", py::kw_only(), py::arg("T") = 1000, py::arg("c0") = 2.0, py::arg("c1") = 10.0,
      py::arg("file") = py::none(), py::arg("kind") = "auto", R"doc(
The noise schedule the sampler uses (THEORY.md, Schedules), in float64: a dict with name, T, and
(T + 1,) arrays alpha, abar and one_minus_abar (index t; alpha[0] = abar[0] = 1). name: lcw,
li-yan, linear, cosine, or file (file: its path, kind: alpha | abar | auto).)doc");
}

}  // namespace gmmdiff::python
