// gmmdiff (private to host/tv/): the statistics the TV module computes on the host from rows it
// holds (the backend's HistogramSpec bins projections and one radial value only; docs/tv.md,
// "Statistics"):
//   meansperp  the 2-D pair (<u, y>, |P_u (y - c)|^2): the projection on the top principal
//              direction u of the means (their span when they lie on a line) and the squared
//              radius of the part of y - c orthogonal to u, c = sum_k pi_k mu_k. Under isotropic
//              components the two are independent within a component, so the cell masses are
//              sum_k pi_k P_k(a-bin) Q_k(b-bin), Q_k from s_k^2 chi'^2(d - 1, |P_u (mu_k - c)|^2 / s_k^2).
//              For a reducible model (means on a line, one sd) the pair is a sufficient statistic:
//              its TV is the full TV up to binning.
//   logp       log p_0(y), the target's own log-density: its law under the target is not known in
//              closed form, so the masses come from the exact reference sample and the edges from
//              the quantiles of an independent exact pilot sample.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "tv/target_law.hpp"

namespace gmmdiff::tv_detail {

/// What the host bins, and where its histograms go in a plan's HistogramCounts: after the
/// backend's values and pairs, the logp histogram (one_d) and the meansperp pair (two_d).
struct HostSpec {
  int d = 0;
  bool pair = false;
  std::vector<double> u, center;            ///< [d] each: the line's unit direction, the radius' centre
  std::vector<double> edges_line, edges_perp;  ///< equal-mass edges of <u, X_0> and |P_u (X_0 - c)|^2
  bool logp = false;
  Mixture model;                            ///< the target, for log p_0 (kept only when logp)
  std::vector<double> edges_logp;           ///< set by the pilot sample (empty until then)
  bool empty() const { return !pair && !logp; }
  int one_d() const { return logp ? 1 : 0; }
  int two_d() const { return pair ? 1 : 0; }
};

/// The logp statistic's value of a row is log_density(model, y) (gmmdiff/model.hpp: log-sum-exp
/// over the components, in double).

/// What to bin of a block of rows: the pair, the log-density, or both.
struct HostWork {
  bool pair = true, logp = true;
};

/// Bins rows x spec.d values (row-major, float or double) into the host histograms of counts:
/// one_d[off1] (logp) and two_d[off2] (the pair). Rows with a NaN or Inf are in no histogram; their
/// number is returned (the backend counts rows and non-finite rows; callers that bin on the host
/// only add them). OpenMP over fixed blocks of rows with thread-local counts merged in order: the
/// counts do not depend on the thread count or on how the rows are cut into calls.
template <typename Real>
uint64_t host_accumulate(const HostSpec& spec, const HostWork& work, const Real* rows, std::size_t n,
                         HistogramCounts& counts, std::size_t off1, std::size_t off2);

/// The law of |P_u (X_0 - c)|^2 (tv/target_law.hpp, SquaredDistanceLaw with dof = d - 1): per
/// component s2_k chi'^2(d - 1, lambda_k) when every component is isotropic (exact), and a
/// moment-matched gamma per component (always, for the edges: squared_distance_edges).
using PerpLaw = SquaredDistanceLaw;
PerpLaw perp_law(const Mixture& m, const std::vector<double>& u, const std::vector<double>& center);
/// Exact masses of the pair's cells, [Ba * Bb], the perp bin fastest (L.exact must hold).
std::vector<double> perp_pair_masses(const Mixture& m, const std::vector<double>& u, const std::vector<double>& edges_line,
                                     const PerpLaw& L, const std::vector<double>& edges_perp);

/// Rows of the exact pilot sample that fix the logp edges for B bins: 64 B, at least 16384 and at
/// most 2^20.
uint64_t logp_pilot_rows(int B);
/// Equal-mass edges (-inf, q_1, ..., q_{B-1}, +inf) from the empirical quantiles of values
/// (sorted in place).
std::vector<double> quantile_edges(std::vector<double>& values, int B);

}  // namespace gmmdiff::tv_detail
