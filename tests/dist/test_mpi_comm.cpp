// The MPI Comm (host/dist/mpi_comm.cpp) in a real MPI job: ctest runs this binary under
// `mpirun -np 3` (label mpi). Every rank runs every test; only rank 0 prints, and the job fails
// when any rank does. The protocols above it are tested with thread ranks in tests/dist/test_comm.cpp.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/comm.hpp"
#include "gmmdiff/error.hpp"

using namespace gmmdiff;

namespace {

dist::Comm& world() { return dist::world(); }

TEST(MpiComm, IsTheLaunchersJob) {
  dist::Comm& c = world();
  EXPECT_EQ(c.kind(), "mpi");
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  ASSERT_NE(size, nullptr);
  EXPECT_EQ(c.size(), std::atoi(size));
  EXPECT_GE(c.size(), 2) << "run this test with mpirun -np 2 or more";
  EXPECT_EQ(c.local_size(), c.size());  // one machine
  EXPECT_EQ(c.local_rank(), c.rank());
}

TEST(MpiComm, BroadcastGatherAndExactSums) {
  dist::Comm& c = world();
  std::string big = c.root() ? std::string(3 << 20, 'x') + "end" : "";
  c.broadcast(big, 0);
  EXPECT_EQ(big.size(), (3u << 20) + 3);
  EXPECT_EQ(big.substr(big.size() - 3), "end");
  std::string from_last = c.rank() == c.size() - 1 ? "last" : "";
  c.broadcast(from_last, c.size() - 1);
  EXPECT_EQ(from_last, "last");
  // Rank r gives r copies of 'a' + r: every rank gets them all, in rank order.
  const std::vector<std::string> all = c.all_gather(std::string(c.rank(), char('a' + c.rank())));
  ASSERT_EQ(static_cast<int>(all.size()), c.size());
  for (int r = 0; r < c.size(); ++r) EXPECT_EQ(all[r], std::string(r, char('a' + r)));
  const std::vector<std::string> at_root = c.gather("r" + std::to_string(c.rank()), 0);
  EXPECT_EQ(at_root.size(), c.root() ? static_cast<std::size_t>(c.size()) : 0u);
  // Sums past 2^53 (where doubles lose integers) stay exact.
  std::vector<uint64_t> v = {(uint64_t(1) << 60) + static_cast<uint64_t>(c.rank()), 1};
  c.sum_exact(v);
  const uint64_t n = static_cast<uint64_t>(c.size());
  EXPECT_EQ(v[0], n * (uint64_t(1) << 60) + n * (n - 1) / 2);
  EXPECT_EQ(v[1], n);
}

TEST(MpiComm, MessagesReachTheirRankInOrder) {
  dist::Comm& c = world();
  if (c.root()) {
    for (int r = 1; r < c.size(); ++r) c.send(r, 7, "go " + std::to_string(r));
    // Two replies from each rank, in any interleaving of the ranks but each rank's in order.
    std::vector<int> got(c.size(), 0);
    for (int replies = 0; replies < 2 * (c.size() - 1); ++replies) {
      const dist::Comm::Message m = c.receive();
      EXPECT_EQ(m.tag, 8);
      ASSERT_GT(m.from, 0);
      EXPECT_EQ(m.bytes, (got[m.from]++ == 0 ? "first from " : "second from ") + std::to_string(m.from));
    }
    EXPECT_FALSE(c.poll().has_value());
  } else {
    const dist::Comm::Message m = c.receive();
    EXPECT_EQ(m.from, 0);
    EXPECT_EQ(m.tag, 7);
    EXPECT_EQ(m.bytes, "go " + std::to_string(c.rank()));
    c.send(0, 8, "first from " + std::to_string(c.rank()));
    c.send(0, 8, "second from " + std::to_string(c.rank()));
  }
  c.barrier();
}

TEST(MpiComm, CollectiveErrorsAreReportedOnceByRankZero) {
  dist::Comm& c = world();
  try {
    dist::collective(c, [&] {
      if (c.rank() == c.size() - 1) throw ResourceError("no room on the last rank");
    });
    FAIL() << "no rank threw";
  } catch (const dist::JobFailure& f) {
    EXPECT_EQ(f.kind(), dist::JobFailure::kResource);
    EXPECT_EQ(f.report(), c.root());
    if (c.root()) {
      EXPECT_EQ(std::string(f.what()),
                "rank " + std::to_string(c.size() - 1) + " of " + std::to_string(c.size()) + ": no room on the last rank");
    }
  }
  // Block-ordered partials: every rank receives all of them, in block order.
  const uint64_t nblocks = 10;
  const dist::Range mine = dist::split_range(nblocks, c.rank(), c.size());
  std::vector<double> parts;
  for (uint64_t b = mine.first; b < mine.first + mine.count; ++b) parts.push_back(0.1 * double(b));
  const std::vector<double> all = dist::gather_blocks(c, parts, nblocks);
  ASSERT_EQ(all.size(), nblocks);
  for (uint64_t b = 0; b < nblocks; ++b) EXPECT_EQ(all[b], 0.1 * double(b));
}

}  // namespace

/// On ranks other than 0: only failures, each with the rank that saw it.
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "rank %d: %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                   r.summary());
  }

 private:
  int rank_;
};

int main(int argc, char** argv) {
  dist::Session session(&argc, &argv);
  testing::InitGoogleTest(&argc, argv);
  if (!dist::world().root()) {  // rank 0 reports; the others print only their failures
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(dist::world().rank()));
  }
  return RUN_ALL_TESTS();
}
