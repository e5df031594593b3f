// gmmdiff (dist): the serial Comm, the session that joins an MPI job, and the helpers that split
// work and agree on errors (host/dist/comm.hpp, docs/scale.md).
#include "dist/comm.hpp"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>

#include "gmmdiff/error.hpp"
#if defined(GMMDIFF_HAVE_MPI)
#include "dist/mpi_comm.hpp"
#endif

namespace gmmdiff::dist {
namespace {

/// One process alone: every collective is the identity.
class SerialComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string kind() const override { return "serial"; }
  void barrier() override {}
  void broadcast(std::string&, int) override {}
  std::vector<std::string> gather(const std::string& mine, int) override { return {mine}; }
  void sum_exact(uint64_t*, std::size_t) override {}
  void send(int to, int, const std::string&) override {
    throw std::logic_error("dist: send to rank " + std::to_string(to) + " in a job of one process");
  }
  Message receive() override { throw std::logic_error("dist: receive in a job of one process"); }
  std::optional<Message> poll() override { return std::nullopt; }
  [[noreturn]] void abort(int code) override { std::_Exit(code); }
};

SerialComm g_serial;
std::unique_ptr<Comm> g_world;  // set by Session when the process is one rank of an MPI job
int g_gpu_sharers = 1;          // local ranks given the same GPU by Session
std::vector<std::string> g_placement;  // what Session set for this rank

std::string pack(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    const uint64_t n = p.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out += p;
  }
  return out;
}

std::vector<std::string> unpack(const std::string& s) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at + sizeof(uint64_t) <= s.size()) {
    uint64_t n = 0;
    std::memcpy(&n, s.data() + at, sizeof n);
    at += sizeof n;
    parts.push_back(s.substr(at, static_cast<std::size_t>(n)));
    at += static_cast<std::size_t>(n);
  }
  return parts;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return (*end == '\0' && x > 0 && x < (1 << 30)) ? static_cast<int>(x) : fallback;
}

/// GPUs the NVIDIA driver lists, without initialising CUDA (which would fix the visible devices
/// before this rank has chosen its own): one directory per GPU.
int nvidia_gpus() {
  std::error_code ec;
  int n = 0;
  for (std::filesystem::directory_iterator it("/proc/driver/nvidia/gpus", ec), end; !ec && it != end; it.increment(ec))
    ++n;
  return n;
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return CPU_COUNT(&set);
}

}  // namespace

Comm& world() { return g_world ? *g_world : static_cast<Comm&>(g_serial); }
Comm& serial() { return g_serial; }
const std::vector<std::string>& placement() { return g_placement; }

bool mpi_compiled() {
#if defined(GMMDIFF_HAVE_MPI)
  return true;
#else
  return false;
#endif
}

bool launched_by_mpi(const std::function<const char*(const char*)>& getenv) {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"})
    if (const char* s = getenv(v); s && *s) return true;
  if (const char* s = getenv("SLURM_STEP_NUM_TASKS"); s && std::atoi(s) > 1) return true;
  return false;
}

std::optional<std::string> gpu_for_rank(const char* visible, int devices, int local_rank) {
  std::vector<std::string> ids;
  if (visible) {
    std::string cur;
    for (const char* p = visible;; ++p) {
      if (*p == ',' || *p == '\0') {
        if (!cur.empty()) ids.push_back(cur);
        cur.clear();
        if (*p == '\0') break;
      } else if (*p != ' ') {
        cur += *p;
      }
    }
  } else {
    for (int i = 0; i < devices; ++i) ids.push_back(std::to_string(i));
  }
  if (ids.size() <= 1 || local_rank < 0) return std::nullopt;
  return ids[static_cast<std::size_t>(local_rank) % ids.size()];
}

int cpu_share(int affinity, int machine, int local_size) {
  if (affinity < 1) affinity = 1;
  if (local_size > 1 && affinity >= machine) return std::max(1, affinity / local_size);
  return affinity;
}

Session::Session(int* argc, char*** argv) {
  if (!mpi_compiled() || !launched_by_mpi([](const char* n) { return std::getenv(n); })) return;
#if defined(GMMDIFF_HAVE_MPI)
  g_world = mpi::init(argc, argv);
  mpi_ = true;
  Comm& c = *g_world;
  const int step_tasks = env_int("SLURM_STEP_NUM_TASKS", 1);
  if (step_tasks > 1 && c.size() == 1) {
    g_world.reset();
    mpi::finalize();
    mpi_ = false;
    throw Error("srun started " + std::to_string(step_tasks) +
                " tasks that did not join one MPI job (each would do the whole run): launch with srun --mpi=pmix "
                "(or the MPI plugin of your site), or with mpirun");
  }
  // Cores: OpenMP's default for this rank, unless the user chose (OMP_NUM_THREADS).
  const int machine = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const int share = cpu_share(affinity_cpus(), machine, c.local_size());
  if (!std::getenv("OMP_NUM_THREADS")) {
    omp_set_num_threads(share);
    g_placement.push_back("OpenMP threads " + std::to_string(share) + " (" + std::to_string(c.local_size()) +
                         " ranks on this machine, " + std::to_string(machine) + " CPUs)");
  } else {
    g_placement.push_back(std::string("OpenMP threads from OMP_NUM_THREADS=") + std::getenv("OMP_NUM_THREADS"));
  }
  // GPU: one per local rank, chosen before anything initialises CUDA.
  if (c.local_size() > 1) {
    const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
    const std::string before = vis ? vis : "";
    const int gpus = vis ? 0 : nvidia_gpus();
    if (const auto g = gpu_for_rank(vis, gpus, c.local_rank())) {
      ::setenv("CUDA_VISIBLE_DEVICES", g->c_str(), 1);
      const int listed = vis ? static_cast<int>(std::count(before.begin(), before.end(), ',')) + 1 : gpus;
      g_gpu_sharers = (c.local_size() + listed - 1) / listed;
      g_placement.push_back("CUDA_VISIBLE_DEVICES=" + *g + " (local rank " + std::to_string(c.local_rank()) +
                           (vis ? " of the devices " + before : " of " + std::to_string(gpus) + " GPUs") + ")");
    }
  }
#else
  (void)argc;
  (void)argv;
#endif
}

Session::~Session() {
#if defined(GMMDIFF_HAVE_MPI)
  if (mpi_) {
    // Ranks done before the others (a command run by rank 0 alone) wait asleep, not in
    // MPI_Finalize. A failed barrier (a rank already gone) must not stop the finalisation.
    try {
      g_world->barrier();
    } catch (...) {
    }
    g_world.reset();
    mpi::finalize();
  }
#endif
}

std::vector<std::string> Comm::all_gather(const std::string& mine) {
  if (size() == 1) return {mine};
  std::string packed = pack(gather(mine, 0));
  broadcast(packed, 0);
  return unpack(packed);
}

int ranks_sharing(const std::string& backend_name) {
  if (backend_name == "cpu") return world().local_size();
  if (backend_name == "cuda") return g_gpu_sharers;
  return 1;
}

std::size_t rank_chunk_rows(const Backend& be, const RunShape& shape, std::size_t requested) {
  if (requested > 0) return requested;
  const int sharers = ranks_sharing(be.name());
  if (sharers <= 1) return 0;
  const std::size_t rows = be.max_chunk_rows(shape) / static_cast<std::size_t>(sharers) / kChunkAlign * kChunkAlign;
  return std::max(rows, kChunkAlign);
}

Range split_range(uint64_t n, int rank, int size) {
  GMMDIFF_EXPECTS(size >= 1 && rank >= 0 && rank < size, "split_range: rank ", rank, " of ", size);
  const uint64_t s = static_cast<uint64_t>(size), r = static_cast<uint64_t>(rank);
  const uint64_t base = n / s, extra = n % s;
  Range out;
  out.count = base + (r < extra ? 1 : 0);
  out.first = r * base + (r < extra ? r : extra);
  return out;
}

std::vector<double> gather_blocks(Comm& comm, const std::vector<double>& mine, uint64_t nblocks, std::size_t k) {
  const Range my = split_range(nblocks, comm.rank(), comm.size());
  GMMDIFF_EXPECTS(mine.size() == my.count * k, "gather_blocks: rank ", comm.rank(), " has ", mine.size(),
                  " partials for ", my.count, " blocks of ", k);
  const std::string bytes(reinterpret_cast<const char*>(mine.data()), mine.size() * sizeof(double));
  std::vector<double> all;
  all.reserve(static_cast<std::size_t>(nblocks * k));
  for (const std::string& part : comm.all_gather(bytes)) {
    const std::size_t at = all.size();
    all.resize(at + part.size() / sizeof(double));
    std::memcpy(all.data() + at, part.data(), part.size());
  }
  GMMDIFF_EXPECTS(all.size() == nblocks * k, "gather_blocks: ", all.size(), " partials for ", nblocks, " blocks");
  return all;
}

void sum_counts(Comm& comm, HistogramCounts& counts) {
  if (comm.size() == 1) return;
  // One flat vector: the shape, then every count; the shapes must agree (checked on the sums).
  std::vector<uint64_t> flat{counts.one_d.size(), counts.two_d.size(), counts.rows, counts.nonfinite_rows};
  for (const auto& v : counts.one_d) flat.push_back(v.size());
  for (const auto& v : counts.two_d) flat.push_back(v.size());
  for (const auto& v : counts.one_d) flat.insert(flat.end(), v.begin(), v.end());
  for (const auto& v : counts.two_d) flat.insert(flat.end(), v.begin(), v.end());
  std::vector<uint64_t> len{flat.size()};
  comm.sum_exact(len);
  if (len[0] != flat.size() * static_cast<uint64_t>(comm.size()))
    throw std::logic_error("sum_counts: the ranks' histograms differ in shape");
  comm.sum_exact(flat);
  const uint64_t n = static_cast<uint64_t>(comm.size());
  const std::size_t heads = 4 + counts.one_d.size() + counts.two_d.size();
  if (flat[0] != counts.one_d.size() * n || flat[1] != counts.two_d.size() * n)
    throw std::logic_error("sum_counts: the ranks' histograms differ in shape");
  for (std::size_t i = 4; i < heads; ++i) {
    const std::size_t mine = i < 4 + counts.one_d.size() ? counts.one_d[i - 4].size()
                                                          : counts.two_d[i - 4 - counts.one_d.size()].size();
    if (flat[i] != mine * n) throw std::logic_error("sum_counts: the ranks' histograms differ in shape");
  }
  counts.rows = flat[2];
  counts.nonfinite_rows = flat[3];
  std::size_t at = heads;
  for (auto& v : counts.one_d)
    for (auto& c : v) c = flat[at++];
  for (auto& v : counts.two_d)
    for (auto& c : v) c = flat[at++];
}

void collective(Comm& comm, const std::function<void()>& f) {
  if (comm.size() == 1) {
    f();
    return;
  }
  // The status of this rank: "" when f succeeded, else the kind's digit and the message.
  std::string status;
  auto fail = [&](JobFailure::Kind k, const std::string& msg) { status = std::to_string(int(k)) + msg; };
  try {
    f();
  } catch (const JobFailure& e) {  // f was not meant to communicate; keep what it says all the same
    fail(e.kind(), e.report() ? e.what() : "a collective step failed on another rank");
  } catch (const ResourceError& e) {
    fail(JobFailure::kResource, e.what());
  } catch (const Error& e) {  // NumericalError too: the exit code of bad input, as in one process
    fail(JobFailure::kBadInput, e.what());
  } catch (const std::bad_alloc&) {
    fail(JobFailure::kResource, "out of memory (try a smaller --chunk or --n)");
  } catch (const std::exception& e) {
    fail(JobFailure::kInternal, e.what());
  } catch (...) {
    fail(JobFailure::kInternal, "an unknown exception");
  }
  comm.barrier();  // the ranks that finished first wait here asleep (Comm::barrier), not polling
  const std::vector<std::string> all = comm.all_gather(status);
  int failed = -1;
  for (int r = 0; r < static_cast<int>(all.size()); ++r)
    if (!all[r].empty()) {
      failed = r;
      break;
    }
  if (failed < 0) return;
  const auto kind = static_cast<JobFailure::Kind>(all[failed][0] - '0');
  if (!comm.root()) throw JobFailure(kind, "", false);
  const std::string who =
      failed == 0 ? std::string() : "rank " + std::to_string(failed) + " of " + std::to_string(comm.size()) + ": ";
  throw JobFailure(kind, who + all[failed].substr(1), true);
}

void on_root(Comm& comm, const std::function<void()>& f) {
  collective(comm, [&] {
    if (comm.root()) f();
  });
}

}  // namespace gmmdiff::dist
