// gmmdiff (dist): the processes of one job and what they say to each other (docs/scale.md).
//
// A Comm is MPI's world when the build has MPI and the process was started by an MPI launcher
// (mpirun, srun), and one process alone otherwise: the same binary runs either way, and every
// collective below is then a no-op or the identity. Above this layer, a run is split by particle
// index into contiguous ranges (split_range), integer counts are summed exactly (sum_exact), and
// floating sums are formed from per-block partial sums gathered in block order (gather_blocks), so
// that no figure depends on the number of ranks. No MPI type appears here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"

namespace gmmdiff::dist {

class Comm {
 public:
  virtual ~Comm() = default;
  Comm() = default;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// This process's place among the ranks on its own machine (an MPI_COMM_TYPE_SHARED split):
  /// what picks its GPU and its share of the cores.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  /// "mpi" (launched by an MPI launcher, even as one rank) or "serial".
  virtual std::string kind() const = 0;
  bool root() const { return rank() == 0; }

  virtual void barrier() = 0;
  /// Every rank ends with root's bytes.
  virtual void broadcast(std::string& bytes, int root = 0) = 0;
  /// Root receives every rank's bytes, in rank order; the others get an empty vector.
  virtual std::vector<std::string> gather(const std::string& mine, int root = 0) = 0;
  /// Every rank receives every rank's bytes, in rank order.
  std::vector<std::string> all_gather(const std::string& mine);
  /// Element-wise sums over the ranks, in place on every rank. Integers: exact in any order.
  virtual void sum_exact(uint64_t* values, std::size_t count) = 0;
  void sum_exact(std::vector<uint64_t>& v) { sum_exact(v.data(), v.size()); }

  // ---- point to point (the sweep's dispatcher; only with size() > 1) ----
  struct Message {
    int from = -1;
    int tag = 0;
    std::string bytes;
  };
  virtual void send(int to, int tag, const std::string& bytes) = 0;
  /// The next message from any rank, waiting for it.
  virtual Message receive() = 0;
  /// The next message from any rank if one has arrived, else nothing (does not wait).
  virtual std::optional<Message> poll() = 0;

  /// Ends every rank of the job at once with exit code `code` (MPI_Abort); one process: _exit.
  [[noreturn]] virtual void abort(int code) = 0;
};

/// The process's communicator: the one Session set up, else a serial one (one process alone).
Comm& world();
/// One process alone (whatever world() is): for the library's one-process entry points.
Comm& serial();

/// Joins the job this process was launched into, for the lifetime of the object (the CLI's main
/// holds one). With MPI built and an MPI launcher's environment present (launched_by_mpi), it
/// initialises MPI and makes world() the job's communicator; it then gives this rank its share of
/// the CPU cores (when OMP_NUM_THREADS is unset) and its GPU (CUDA_VISIBLE_DEVICES, gpu_for_rank).
/// Otherwise world() stays serial. The destructor finalises MPI. Throws gmmdiff::Error when srun
/// started several tasks that did not form one MPI job (the usual cause: no --mpi=pmix).
class Session {
 public:
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 private:
  bool mpi_ = false;
};

/// What the Session set for this rank, e.g. "CUDA_VISIBLE_DEVICES=1 (local rank 1 of 2 GPUs)"
/// (empty in one process); `gmmdiff info` prints it for every rank.
const std::vector<std::string>& placement();

/// How many ranks of this machine share the memory of a backend of this name: "cpu", every local
/// rank; "cuda", the local ranks given the same GPU (1 when each has its own, or when the launcher
/// chose the devices). 1 in one process.
int ranks_sharing(const std::string& backend_name);

/// The chunk a rank uses for `count` particles of shape on be: `requested` when set, else its
/// share of what be's memory allows (be.max_chunk_rows / ranks_sharing, a multiple of
/// kChunkAlign), or 0 (automatic) when the rank has that memory to itself. Results do not depend
/// on the chunk.
std::size_t rank_chunk_rows(const Backend& be, const RunShape& shape, std::size_t requested);

/// Whether the library was built with MPI.
bool mpi_compiled();

/// Whether the environment is that of a process started by an MPI launcher: OpenMPI's mpirun
/// (OMPI_COMM_WORLD_SIZE), PMIx (PMIX_RANK, e.g. srun --mpi=pmix), PMI-1/2 (PMI_RANK, PMI_SIZE),
/// MPICH's Hydra (MPI_LOCALRANKID), or srun with more than one task (SLURM_STEP_NUM_TASKS > 1).
/// getenv is a parameter so that tests can give an environment.
bool launched_by_mpi(const std::function<const char*(const char*)>& getenv);

/// The CUDA_VISIBLE_DEVICES value for the rank with this local rank, or nothing (leave it alone):
/// `visible` is the variable's current value (nullptr when unset), `devices` the GPUs the machine
/// has (used when unset). One device listed, or no device: nothing. Else entry local_rank mod
/// count of the list (0..devices-1 when unset): one rank per GPU, shared round-robin when there are
/// more ranks than GPUs.
std::optional<std::string> gpu_for_rank(const char* visible, int devices, int local_rank);

/// OpenMP threads for a rank: the CPUs it may run on (affinity), divided among the local ranks
/// when the launcher bound none of them (every rank may run on every CPU); at least 1.
int cpu_share(int affinity_cpus, int machine_cpus, int local_size);

// ---- splitting and reducing ----------------------------------------------------------------

/// A contiguous range [first, first + count) of n items.
struct Range {
  uint64_t first = 0;
  uint64_t count = 0;
};
/// Rank `rank`'s part of n items split into `size` contiguous ranges in rank order, as equal as
/// possible (the first n mod size ranks take one more). Ranges may be empty when n < size.
Range split_range(uint64_t n, int rank, int size);

/// Floating sums that do not depend on the number of ranks: the work is cut into nblocks fixed
/// blocks, this rank computed the partial results of blocks split_range(nblocks, rank, size) (k
/// doubles each, `mine`, in block order), and every rank receives all nblocks x k partials in
/// block order. Summing them in that order gives the same bits on 1 rank or 1000.
std::vector<double> gather_blocks(Comm& comm, const std::vector<double>& mine, uint64_t nblocks, std::size_t k = 1);

/// Sums histogram counts over the ranks, in place on every rank (integers: exact, so the sum of the
/// ranks' counts is the count of one process over all rows). Every rank's counts must have one shape.
void sum_counts(Comm& comm, HistogramCounts& counts);

// ---- errors across ranks -------------------------------------------------------------------

/// How a collective step that failed on some rank ends on every rank: rank 0's carries the message
/// of the lowest failing rank (report() is true), the others' are silent. The CLI prints the
/// message once, and every rank exits with the code of the kind (2 bad input, 3 resources,
/// 1 internal), as one process would.
class JobFailure : public std::exception {
 public:
  enum Kind { kBadInput = 0, kResource = 1, kInternal = 2 };
  JobFailure(Kind kind, std::string message, bool report)
      : kind_(kind), message_(std::move(message)), report_(report) {}
  Kind kind() const { return kind_; }
  bool report() const { return report_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  Kind kind_;
  std::string message_;
  bool report_;
};

/// Runs f on every rank of comm, where f communicates with no other rank (checks, local work,
/// local writes); then the ranks agree. When f threw on any rank, every rank throws a JobFailure:
/// the kind of the lowest failing rank's exception (gmmdiff::Error and NumericalError: bad input;
/// ResourceError and std::bad_alloc: resources; anything else: internal) and, on rank 0, its
/// message, prefixed "rank r of N: " unless r is 0. So a bad input is reported once, and a failure
/// on one rank ends the job cleanly on all. One process alone (size() 1): f is simply called, and
/// what it throws propagates unchanged.
void collective(Comm& comm, const std::function<void()>& f);

/// As collective, where only rank 0 does anything (e.g. renames the finished file into place).
void on_root(Comm& comm, const std::function<void()>& f);

}  // namespace gmmdiff::dist
