// gmmdiff: the figures of a TV histogram (tv/figures.hpp; docs/tv.md): plug-in TV, noise floor,
// the parametric bootstrap's interval and bias correction.
#include "tv/figures.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gmmdiff/error.hpp"
#include "core/special_functions.hpp"

namespace gmmdiff::tv_detail {

namespace {
constexpr double kZ975 = 1.959963984540054;  ///< the standard normal's 97.5% point

/// Miller-Madow-corrected plug-in KL of sample frequencies q (n rows) against target masses p
/// (exact: floored at the smallest normal double, which keeps a lower bound on the binned KL when
/// a true mass underflows; or a reference of m rows: smoothed by half a count per cell, so that an
/// empty reference cell gives a finite figure). occupied: cells counted as occupied by the sample
/// (Miller-Madow's B). Returns the uncorrected KL in `raw`.
struct KlTerms {
  double raw = 0, mm = 0;
};
KlTerms kl_of(const double* q, const double* p, std::size_t C, double dn, double dm, std::size_t occupied_q,
              std::size_t occupied_p) {
  KlTerms t;
  const double smooth_den = dm > 0 ? dm + 0.5 * static_cast<double>(C) : 0;
  for (std::size_t b = 0; b < C; ++b) {
    if (!(q[b] > 0)) continue;
    const double pb = dm > 0 ? (std::max(0.0, p[b]) * dm + 0.5) / smooth_den
                             : std::max(p[b], std::numeric_limits<double>::min());
    t.raw += q[b] * std::log(q[b] / pb);
  }
  t.raw = std::max(0.0, t.raw);
  t.mm = t.raw - (static_cast<double>(std::max<std::size_t>(occupied_q, 1)) - 1) / (2 * dn);
  if (dm > 0) t.mm -= (static_cast<double>(std::max<std::size_t>(occupied_p, 1)) - 1) / (2 * dm);
  return t;
}

/// The KL figures of r (docs/tv.md, "KL"): the plug-in KL of the observed histograms, its
/// Miller-Madow correction, and a 95% interval by the same path of worlds as the TV's (the sample's
/// cell probabilities move from the null to the observation, pY = c + alpha (yhat - c), and the
/// target's likewise with a reference; the world's true binned KL is KL(pY || pX)), with the TV's
/// normal draws Z and W (common random numbers; no new draws, so the TV figures are unchanged).
void kl_figures(StatResult& r, const std::vector<uint64_t>& counts, const std::vector<double>& p, double dn,
                uint64_t m, const std::vector<double>& Z, const std::vector<double>& W,
                const std::vector<double>& centre, const std::vector<double>& yhat) {
  const std::size_t C = p.size();
  const double dm = static_cast<double>(m);
  const int R = static_cast<int>(Z.size() / C);
  std::size_t occ_q = 0, occ_p = 0;
  for (std::size_t b = 0; b < C; ++b) {
    occ_q += counts[b] > 0;
    occ_p += (counts[b] > 0 || p[b] > 0);
  }
  const KlTerms obs = kl_of(yhat.data(), p.data(), C, dn, dm, occ_q, occ_p);
  r.kl = obs.raw;
  r.kl_mm = std::max(0.0, obs.mm);

  std::vector<double> pY(C), pX(C), sY(C), sX(C), qs(C), ps(C), reps(R);
  const double rn = 1 / std::sqrt(dn), rm = m > 0 ? 1 / std::sqrt(dm) : 0;
  const double count_floor = 0.5 / dn;  // a replicate cell "holds a row" when its count rounds to >= 1
  auto world = [&](double alpha) {
    for (std::size_t b = 0; b < C; ++b) {
      pY[b] = std::max(0.0, centre[b] + alpha * (yhat[b] - centre[b]));
      pX[b] = m == 0 ? p[b] : std::max(0.0, centre[b] + alpha * (p[b] - centre[b]));
      sY[b] = std::sqrt(pY[b]);
      sX[b] = std::sqrt(pX[b]);
    }
  };
  struct Summary {
    double q_lo, q_hi, truth;
  };
  auto summary = [&](double alpha) {
    world(alpha);
    std::size_t occ_truth = 0;
    for (std::size_t b = 0; b < C; ++b) occ_truth += pY[b] > 0;
    const double truth = kl_of(pY.data(), pX.data(), C, dn, dm, occ_truth, C).raw;
    for (int i = 0; i < R; ++i) {
      const double* z = Z.data() + static_cast<std::size_t>(i) * C;
      const double* w = m > 0 ? W.data() + static_cast<std::size_t>(i) * C : nullptr;
      double zs = 0, ws = 0;
      for (std::size_t b = 0; b < C; ++b) zs += sY[b] * z[b];
      if (w)
        for (std::size_t b = 0; b < C; ++b) ws += sX[b] * w[b];
      std::size_t oq = 0, op = 0;
      for (std::size_t b = 0; b < C; ++b) {
        qs[b] = std::max(0.0, pY[b] + rn * (sY[b] * z[b] - pY[b] * zs));
        ps[b] = w ? std::max(0.0, pX[b] + rm * (sX[b] * w[b] - pX[b] * ws)) : pX[b];
        oq += qs[b] >= count_floor;
        op += qs[b] >= count_floor || (w ? ps[b] >= 0.5 / dm : pX[b] > 0);
      }
      double sq = 0;  // the replicate's frequencies, renormalised (the normal draws keep the sum only to first order)
      for (std::size_t b = 0; b < C; ++b) sq += qs[b];
      if (sq > 0)
        for (std::size_t b = 0; b < C; ++b) qs[b] /= sq;
      reps[i] = kl_of(qs.data(), ps.data(), C, dn, dm, oq, op).mm;
    }
    double mean = 0, var = 0;
    for (double x : reps) mean += x;
    mean /= R;
    for (double x : reps) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / (R - 1));
    return Summary{mean - kZ975 * sd, mean + kZ975 * sd, truth};
  };
  const Summary at0 = summary(0.0), at1 = summary(1.0);
  const double est = obs.mm;  // the observed estimate (unclipped: the replicates are not clipped either)
  // The world whose replicates' 2.5% (97.5%) point equals the observed estimate gives the upper
  // (lower) end: its true binned KL. Beyond alpha = 1 the basic bootstrap continues it.
  auto solve = [&](double Summary::*field) {
    if (at0.*field >= est) return 0.0;
    if (at1.*field <= est) return at1.truth + est - at1.*field;
    double lo = 0, hi = 1;
    for (int it = 0; it < 30; ++it) {
      const double mid = 0.5 * (lo + hi);
      (summary(mid).*field < est ? lo : hi) = mid;
    }
    return summary(0.5 * (lo + hi)).truth;
  };
  r.kl_ci_lo = std::max(0.0, solve(&Summary::q_hi));
  r.kl_ci_hi = std::max(r.kl_ci_lo, solve(&Summary::q_lo));
}

}  // namespace

double normal_quantile(double q) {
  GMMDIFF_EXPECTS(q > 0 && q < 1, "normal_quantile: q = ", q, " (need 0 < q < 1)");
  double lo = -40, hi = 40;
  for (int it = 0; it < 200 && hi - lo > 1e-15 * std::max(1.0, std::fabs(lo)); ++it) {
    const double mid = 0.5 * (lo + hi);
    (special::normal_cdf(mid) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

StatResult histogram_figures(const std::vector<uint64_t>& counts, const std::vector<double>& p,
                             uint64_t reference_n, int bootstrap, uint64_t seed, int joint) {
  GMMDIFF_EXPECTS(counts.size() == p.size() && !p.empty(), "histogram_figures: ", counts.size(),
                  " counts for ", p.size(), " target masses");
  GMMDIFF_EXPECTS(bootstrap >= kMinBootstrap, "--bootstrap ", bootstrap, ": at least ", kMinBootstrap,
                  " replicates are needed for a 95% interval");
  const std::size_t C = p.size();
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  GMMDIFF_EXPECTS(n > 0, "no finite rows to estimate TV from");
  const double dn = static_cast<double>(n);
  const uint64_t m = reference_n;
  const double dm = static_cast<double>(m);
  constexpr double kSqrt2OverPi = 0.79788456080286535588;

  StatResult r;
  r.bins = static_cast<int>(C);
  r.exact_target = m == 0;
  r.reference_n = m;
  std::vector<double> yhat(C);
  double tv = 0, floor = 0;
  for (std::size_t b = 0; b < C; ++b) {
    yhat[b] = counts[b] / dn;
    tv += std::fabs(yhat[b] - p[b]);
    if (m == 0) floor += special::binomial_mad(dn, p[b]) / dn;
    else floor += kSqrt2OverPi * std::sqrt(p[b] * (1 - p[b]) * (1 / dn + 1 / dm));
  }
  tv *= 0.5;
  floor *= 0.5;
  r.tv = tv;
  r.floor = floor;

  // The worlds of the parametric bootstrap: a path from the null (alpha = 0: the sample's bins
  // equal the target's, at their pooled centre) to the observed histograms (alpha = 1), along
  // which the true binned TV is alpha * tv. For each alpha, `bootstrap` replicates of the plug-in
  // TV are drawn with common random numbers (the multinomial's normal approximation), so that
  // their mean and quantiles are smooth in alpha. docs/tv.md, "Bootstrap".
  std::vector<double> centre(C), dvec(C);
  for (std::size_t b = 0; b < C; ++b) {
    centre[b] = m == 0 ? p[b] : (dn * yhat[b] + dm * p[b]) / (dn + dm);
    dvec[b] = yhat[b] - p[b];
  }
  const int R = bootstrap;
  std::vector<double> Z(static_cast<std::size_t>(R) * C), W;
  {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> N01;
    for (double& z : Z) z = N01(g);
    if (m > 0) {
      W.resize(Z.size());
      for (double& w : W) w = N01(g);
    }
  }
  struct Summary {
    double mean, q_lo, q_hi, sd;
  };
  std::vector<double> pY(C), pX(C), sY(C), sX(C), reps(R);
  const double rn = 1 / std::sqrt(dn), rm = m > 0 ? 1 / std::sqrt(dm) : 0;
  auto replicates = [&](double alpha) {
    for (std::size_t b = 0; b < C; ++b) {
      pY[b] = std::max(0.0, centre[b] + alpha * (yhat[b] - centre[b]));
      pX[b] = m == 0 ? p[b] : std::max(0.0, centre[b] + alpha * (p[b] - centre[b]));
      sY[b] = std::sqrt(pY[b]);
      sX[b] = std::sqrt(pX[b]);
    }
    for (int r = 0; r < R; ++r) {
      const double* z = Z.data() + static_cast<std::size_t>(r) * C;
      const double* w = m > 0 ? W.data() + static_cast<std::size_t>(r) * C : nullptr;
      // e = (diag(s) z - p (s . z)) / sqrt(n) has the multinomial's covariance (diag(p) - p p^T) / n.
      double zs = 0, ws = 0;
      for (std::size_t b = 0; b < C; ++b) zs += sY[b] * z[b];
      if (w)
        for (std::size_t b = 0; b < C; ++b) ws += sX[b] * w[b];
      double t = 0;
      for (std::size_t b = 0; b < C; ++b) {
        double e = alpha * dvec[b] + rn * (sY[b] * z[b] - pY[b] * zs);
        if (w) e -= rm * (sX[b] * w[b] - pX[b] * ws);
        t += std::fabs(e);
      }
      reps[r] = 0.5 * t;
    }
    // The 2.5% and 97.5% points as mean -+ 1.96 sd of the replicates: far less Monte Carlo noise
    // than the extreme order statistics of 200 replicates (the replicates are sums of many
    // independent-ish terms, close to normal; docs/tv.md).
    double mean = 0, var = 0;
    for (double x : reps) mean += x;
    mean /= R;
    for (double x : reps) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / (R - 1));
    return Summary{mean, mean - kZ975 * sd, mean + kZ975 * sd, sd};
  };
  const Summary at0 = replicates(0.0), at1 = replicates(1.0);
  // The alpha where a summary of the replicates equals the observed tv, as a TV (alpha * tv);
  // beyond alpha = 1 the basic bootstrap continues it (2 tv - summary at 1), which is continuous
  // at alpha = 1 and is the plain basic bootstrap far from the floor.
  auto solve = [&](double Summary::*field) {
    if (at0.*field >= tv) return 0.0;
    if (at1.*field <= tv) return 2 * tv - at1.*field;
    double lo = 0, hi = 1;
    for (int it = 0; it < 30; ++it) {
      const double mid = 0.5 * (lo + hi);
      (replicates(mid).*field < tv ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi) * tv;
  };
  r.tv_corrected = std::clamp(solve(&Summary::mean), 0.0, 1.0);
  r.ci_lo = std::clamp(solve(&Summary::q_hi), 0.0, 1.0);
  r.ci_hi = std::clamp(solve(&Summary::q_lo), 0.0, 1.0);
  if (r.ci_hi < r.ci_lo) r.ci_hi = r.ci_lo;
  r.resolved = r.ci_lo > 0 && tv > floor;

  // The joint lower end: the same crossing with the replicates' upper point at the one-sided level
  // 0.025 / joint (Bonferroni over the report's statistics), so that the largest of `joint`
  // statistics keeps a 97.5% lower bound after it was picked.
  r.ci_lo_joint = r.ci_lo;
  if (joint > 1) {
    const double zj = normal_quantile(1 - 0.025 / joint);
    auto upper = [&](double alpha) {
      const Summary s = replicates(alpha);
      return s.mean + zj * s.sd;
    };
    double v;
    const double u0 = upper(0.0), u1 = upper(1.0);
    if (u0 >= tv) {
      v = 0.0;
    } else if (u1 <= tv) {
      v = 2 * tv - u1;
    } else {
      double lo = 0, hi = 1;
      for (int it = 0; it < 30; ++it) {
        const double mid = 0.5 * (lo + hi);
        (upper(mid) < tv ? lo : hi) = mid;
      }
      v = 0.5 * (lo + hi) * tv;
    }
    r.ci_lo_joint = std::clamp(std::min(v, r.ci_lo), 0.0, 1.0);
  }

  kl_figures(r, counts, p, dn, m, Z, W, centre, yhat);
  return r;
}

}  // namespace gmmdiff::tv_detail
