// gmmdiff (dist): Comm over MPI (host/dist/mpi_comm.hpp). Payloads larger than an int can count
// go in pieces; the point-to-point messages of the sweep are small.
#include "dist/mpi_comm.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "gmmdiff/error.hpp"

namespace gmmdiff::dist::mpi {
namespace {

constexpr std::size_t kPiece = std::size_t(1) << 30;  // bytes or values per MPI call (fits an int)

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string("MPI: ") + what + " failed: " + std::string(msg, static_cast<std::size_t>(len)));
}

class MpiComm final : public Comm {
 public:
  MpiComm() {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    MPI_Comm local;
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    check(MPI_Comm_rank(local, &local_rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
    MPI_Comm_free(&local);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string kind() const override { return "mpi"; }

  /// A barrier whose waiting sleeps: MPI's blocking calls poll the CPU at full speed, which would
  /// take a core from the ranks (or the rank-0 threads) still working on this machine.
  void barrier() override {
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
    wait_sleeping(req);
  }

  void broadcast(std::string& bytes, int root) override {
    unsigned long long n = bytes.size();
    check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, comm_), "MPI_Bcast");
    bytes.resize(static_cast<std::size_t>(n));
    for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
      const int m = static_cast<int>(std::min(kPiece, bytes.size() - at));
      check(MPI_Bcast(&bytes[at], m, MPI_BYTE, root, comm_), "MPI_Bcast");
    }
  }

  std::vector<std::string> gather(const std::string& mine, int root) override {
    GMMDIFF_EXPECTS(mine.size() <= INT_MAX, "MPI gather: ", mine.size(), " bytes from one rank (at most 2^31 - 1)");
    int n = static_cast<int>(mine.size());
    std::vector<int> sizes(rank_ == root ? size_ : 0), offsets;
    check(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, root, comm_), "MPI_Gather");
    std::string all;
    if (rank_ == root) {
      long long total = 0;
      offsets.resize(size_);
      for (int r = 0; r < size_; ++r) {
        offsets[r] = static_cast<int>(total);
        total += sizes[r];
        GMMDIFF_EXPECTS(total <= INT_MAX, "MPI gather: over 2^31 - 1 bytes in all");
      }
      all.resize(static_cast<std::size_t>(total));
    }
    check(MPI_Gatherv(mine.data(), n, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, root, comm_),
          "MPI_Gatherv");
    std::vector<std::string> out;
    if (rank_ == root)
      for (int r = 0; r < size_; ++r) out.push_back(all.substr(static_cast<std::size_t>(offsets[r]), sizes[r]));
    return out;
  }

  void sum_exact(uint64_t* values, std::size_t count) override {
    for (std::size_t at = 0; at < count; at += kPiece) {
      const int m = static_cast<int>(std::min(kPiece, count - at));
      check(MPI_Allreduce(MPI_IN_PLACE, values + at, m, MPI_UINT64_T, MPI_SUM, comm_), "MPI_Allreduce");
    }
    if (count == 0) barrier();  // still a collective: every rank takes part
  }

  void send(int to, int tag, const std::string& bytes) override {
    GMMDIFF_EXPECTS(bytes.size() <= INT_MAX, "MPI send: ", bytes.size(), " bytes (at most 2^31 - 1)");
    check(MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, to, tag, comm_), "MPI_Send");
  }

  Message receive() override {
    for (auto pause = kFirstPause;; pause = std::min(pause * 2, kLongestPause)) {  // sleeping, as barrier()
      if (auto m = poll()) return std::move(*m);
      std::this_thread::sleep_for(pause);
    }
  }

  std::optional<Message> poll() override {
    int flag = 0;
    MPI_Status st;
    check(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st), "MPI_Iprobe");
    if (!flag) return std::nullopt;
    return take(st);
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(comm_, code);
    std::_Exit(code);  // MPI_Abort does not return; this only satisfies [[noreturn]]
  }

 private:
  static constexpr std::chrono::microseconds kFirstPause{20}, kLongestPause{1000};

  void wait_sleeping(MPI_Request& req) {
    for (auto pause = kFirstPause;; pause = std::min(pause * 2, kLongestPause)) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
      std::this_thread::sleep_for(pause);
    }
  }

  Message take(const MPI_Status& st) {
    int n = 0;
    check(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count");
    Message m;
    m.from = st.MPI_SOURCE;
    m.tag = st.MPI_TAG;
    m.bytes.resize(static_cast<std::size_t>(n));
    check(MPI_Recv(m.bytes.data(), n, MPI_BYTE, m.from, m.tag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
    return m;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> init(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  }
  return std::make_unique<MpiComm>();
}

void finalize() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

}  // namespace gmmdiff::dist::mpi
