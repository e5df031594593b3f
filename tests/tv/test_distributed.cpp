// TV over the ranks of a job (host/tv/distributed.hpp), the ranks being threads of this process
// (util/thread_comm.hpp): each rank reads and bins its rows and its share of the reference sample,
// the counts are summed, and rank 0's report equals one process's bit for bit, for any rank count
// (more ranks than rows too); a bad sample is every rank's error, reported once.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/tv.hpp"
#include "tv/distributed.hpp"
#include "util/sample_util.hpp"
#include "util/thread_comm.hpp"
#include "util/tv_util.hpp"

namespace gmmdiff {
namespace {

/// Every field of a report, doubles in hex: equal strings are equal reports, bit for bit.
std::string fingerprint(const TvReport& r) {
  std::ostringstream os;
  os << std::hexfloat << "n=" << r.n << " nonfinite=" << r.nonfinite << " best=" << r.best;
  for (const auto& n : r.notes) os << " note=" << n;
  for (const auto& s : r.stats)
    os << "\n" << s.name << " " << s.dims << " " << s.bins << " " << s.exact_target << " " << s.tv << " "
       << s.tv_corrected << " " << s.floor << " " << s.ci_lo << " " << s.ci_hi << " " << s.resolved << " "
       << s.reference_n;
  return os.str();
}

TEST(TvDistributed, RanksGiveTheOneProcessReportBitForBit) {
  const Mixture m = test::diagonal_mixture();  // means2d and radial need the reference sample
  TvOptions o;
  o.stats = "means,means2d,radial,random:2";
  o.reference_n = 2001;
  o.bootstrap = 30;
  o.seed = 3;
  const uint64_t n = 1203;
  std::vector<double> y = test::draw(m, n, 41);
  y[5 * m.d] = NAN;  // a non-finite row, counted on whichever rank holds it
  const std::string p = test::temp_path("dist_tv.npy");
  write_npy(p, y.data(), n, m.d, true);
  auto be = make_backend("cpu", 1);
  NpyReader whole(p);
  const TvReport one = tv_of_npy(m, whole, o, *be, 100);
  std::size_t with_reference = 0;
  for (const auto& s : one.stats) with_reference += s.reference_n == o.reference_n;
  ASSERT_EQ(with_reference, 2u) << "means2d and radial should take their masses from the reference sample";
  const std::string want = fingerprint(one);
  for (int size : {1, 2, 3, 5}) {
    std::string got;
    auto e = test::run_ranks(size, [&](dist::Comm& c) {
      auto b = make_backend("cpu", 1);
      NpyReader r(p);
      const TvReport rep = tv_of_npy(m, r, o, *b, 64, c);
      if (c.root()) got = fingerprint(rep);
      else if (!rep.stats.empty()) throw std::runtime_error("a rank other than 0 got a report");
    });
    for (int r = 0; r < size; ++r) ASSERT_FALSE(e[r]) << "rank " << r << " of " << size << " failed";
    EXPECT_EQ(got, want) << size << " ranks";
  }
  // More ranks than rows: the ranks without rows still take part.
  std::vector<double> few = test::draw(m, 3, 2);
  write_npy(p, few.data(), 3, m.d, true);
  NpyReader three(p);
  o.reference_n = 5;
  o.bins = 2;
  const std::string want3 = fingerprint(tv_of_npy(m, three, o, *be));
  std::string got3;
  auto e = test::run_ranks(6, [&](dist::Comm& c) {
    auto b = make_backend("cpu", 1);
    NpyReader r(p);
    const TvReport rep = tv_of_npy(m, r, o, *b, 0, c);
    if (c.root()) got3 = fingerprint(rep);
  });
  for (const auto& x : e) ASSERT_FALSE(x);
  EXPECT_EQ(got3, want3);
  std::remove(p.c_str());
}

TEST(TvDistributed, ABadSampleIsEveryRanksErrorReportedOnce) {
  const Mixture m = test::diagonal_mixture();
  const std::string p = test::temp_path("dist_tv_bad.npy");
  std::vector<double> y(10 * 2, 0.5);
  write_npy(p, y.data(), 10, 2, false);  // d = 2, the model has another d
  auto e = test::run_ranks(3, [&](dist::Comm& c) {
    auto b = make_backend("cpu", 1);
    NpyReader r(p);
    tv_of_npy(m, r, TvOptions{}, *b, 0, c);
  });
  int reported = 0, silent = 0;
  for (const auto& x : e) {
    try {
      std::rethrow_exception(x);
    } catch (const dist::JobFailure& f) {
      (f.report() ? reported : silent) += 1;
      if (f.report()) {
        EXPECT_NE(std::string(f.what()).find("columns but the model has d"), std::string::npos) << f.what();
      }
    } catch (...) {
      ADD_FAILURE() << "not a JobFailure";
    }
  }
  EXPECT_EQ(reported, 1);
  EXPECT_EQ(silent, 2);
  std::remove(p.c_str());
}

}  // namespace
}  // namespace gmmdiff
