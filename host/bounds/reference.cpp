// gmmdiff: the exact reference of a reducible model (bounds.hpp; THEORY.md, "Exact reference for
// reducible models").
//
// Means on one line through the origin (mu_k = m_k u, |u| = 1) and one shared isotropic variance
// s^2: the score's component orthogonal to u is -y_perp / v_t (no weight depends on it), so
// Y = z u + y_perp with
//   z:      a 1-D chain z' = phi_t(z) + sigma_tot xi, phi_t(z) = (z + kappa (scale s_t(z) + b)) / sqrt(alpha),
//           s_t the 1-D mixture score of the line coordinates (the score model's, for the score
//           errors), b the bias error's component along u, sigma_tot^2 = sigma_t^2 +
//           (kappa noise_sd)^2 / alpha (the `gaussian` error);
//   y_perp: isotropic Gaussian, variance V_{t-1} = c_t^2 V_t + sigma_tot^2, c_t = (1 - kappa scale / v_t) / sqrt(alpha).
// The density of z is propagated on a uniform grid from N(0, 1): each step pushes it forward through
// phi_t (change of variables: phi_t^-1 by Newton on the bracket the grid's images give, f by
// 6-point Lagrange interpolation) and convolves it with N(0, sigma_tot^2) exactly in Fourier space
// (FFT, zero-padded). TV(X_0, Y_s) is then the integral over z of a closed-form integral over the
// squared orthogonal radius rho (both orthogonal laws are scaled chi-squares with d - 1 degrees of
// freedom and cross once). The grid doubles until TV changes by less than the tolerance; the range
// grows when mass reaches its edges.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "core/special_functions.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff {

namespace {

constexpr double kCollinearTol = 1e-10;     // |mu_k - <mu_k, u> u| <= tol max(1, |mu_k|)
constexpr double kEdgeFraction = 0.05;      // the grid's outer 5% on each side ...
constexpr double kEdgeMass = 1e-13;         // ... must hold less than this mass after every step
constexpr int kNewtonIterations = 60;
constexpr double kMaxSpacingPerSd = 0.125;  // a converged grid resolves the components (h <= sd / 8)
constexpr double kPi = 3.141592653589793238462643383279502884;

// ---- FFT (iterative radix 2, in place), with the twiddles of one size computed once ----
class Fft {
 public:
  explicit Fft(std::size_t n) : n_(n), wr_(n / 2), wi_(n / 2) {
    // exp(-2 pi i k / n), each from its own sin/cos (no recurrence that loses digits).
    for (std::size_t k = 0; k < n / 2; ++k) {
      wr_[k] = std::cos(2 * kPi * double(k) / double(n));
      wi_[k] = -std::sin(2 * kPi * double(k) / double(n));
    }
  }
  std::size_t size() const { return n_; }
  /// In place on (re, im); the inverse includes the 1/n. Real arithmetic throughout (std::complex's
  /// product calls a slow NaN-checking routine without -ffast-math).
  void run(std::vector<double>& re, std::vector<double>& im, bool inverse) const {
    const std::size_t n = n_;
    for (std::size_t i = 1, j = 0; i < n; ++i) {
      std::size_t bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) {
        std::swap(re[i], re[j]);
        std::swap(im[i], im[j]);
      }
    }
    const double sgn = inverse ? -1.0 : 1.0;
    for (std::size_t len = 2; len <= n; len <<= 1) {
      const std::size_t half = len / 2, stride = n / len;
      for (std::size_t i = 0; i < n; i += len)
        for (std::size_t k = 0; k < half; ++k) {
          const double cr = wr_[k * stride], ci = sgn * wi_[k * stride];
          const std::size_t p = i + k, q = p + half;
          const double vr = re[q] * cr - im[q] * ci, vi = re[q] * ci + im[q] * cr;
          re[q] = re[p] - vr;
          im[q] = im[p] - vi;
          re[p] += vr;
          im[p] += vi;
        }
    }
    if (inverse)
      for (std::size_t i = 0; i < n; ++i) {
        re[i] /= double(n);
        im[i] /= double(n);
      }
  }

 private:
  std::size_t n_;
  std::vector<double> wr_, wi_;
};

/// The reducible structure: the unit direction u and the line coordinates of the means.
struct LineModel {
  std::vector<double> u;      // [d]
  std::vector<double> m;      // [K] <mu_k, u>
  std::vector<double> logw;   // [K] log pi_k
  double s2 = 1;              // the shared variance
};

/// "" and the line model when m is reducible along u0 (or along its own longest mean when u0 is
/// empty), else why not.
std::string line_model(const Mixture& mx, const std::vector<double>& u0, LineModel& out) {
  const int d = mx.d, K = mx.K;
  double s2 = mx.var(0, 0);
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < d; ++j)
      if (mx.var(k, j) != s2)
        return "the components' variances differ (component " + std::to_string(k) + ", coordinate " +
               std::to_string(j) + ")";
  std::vector<double> u = u0;
  if (u.empty()) {
    int kmax = 0;
    double nmax = -1;
    for (int k = 0; k < K; ++k) {
      double n2 = 0;
      for (int j = 0; j < d; ++j) n2 += mx.mean(k)[j] * mx.mean(k)[j];
      if (n2 > nmax) {
        nmax = n2;
        kmax = k;
      }
    }
    u.assign(d, 0.0);
    if (nmax > 0) {
      for (int j = 0; j < d; ++j) u[j] = mx.mean(kmax)[j] / std::sqrt(nmax);
    } else {
      u[0] = 1.0;
    }
  }
  out.u = u;
  out.m.resize(K);
  out.logw.resize(K);
  out.s2 = s2;
  for (int k = 0; k < K; ++k) {
    const double* mu = mx.mean(k);
    double c = 0, n2 = 0;
    for (int j = 0; j < d; ++j) {
      c += mu[j] * u[j];
      n2 += mu[j] * mu[j];
    }
    double r2 = 0;
    for (int j = 0; j < d; ++j) r2 += (mu[j] - c * u[j]) * (mu[j] - c * u[j]);
    if (std::sqrt(r2) > kCollinearTol * std::max(1.0, std::sqrt(n2)))
      return "mean " + std::to_string(k) + " is off the line through the origin and the other means";
    out.m[k] = c;
    out.logw[k] = std::log(mx.weights[k]);
  }
  return "";
}

/// One reverse step on the line.
struct LineStep {
  double kappa = 0, inv_sqrt_alpha = 1, scale = 1, bias = 0;
  double sig2 = 0;     // sigma_tot^2
  double c_perp = 1;   // the orthogonal part's factor
  double v = 1;        // abar s^2 + 1 - abar
  std::vector<double> lb, slope, mean;  // logits lb_k + slope_k z; slope_k = sqrt(abar) m_k / v

  /// s_t(z) and s_t'(z) of the score model on the line.
  void score(double z, double& s, double& ds) const {
    const int K = static_cast<int>(lb.size());
    double mx = -INFINITY;
    for (int k = 0; k < K; ++k) mx = std::max(mx, lb[k] + slope[k] * z);
    double sum = 0, s1 = 0, s2 = 0;
    for (int k = 0; k < K; ++k) {
      const double e = std::exp(lb[k] + slope[k] * z - mx);
      sum += e;
      s1 += e * slope[k];
      s2 += e * slope[k] * slope[k];
    }
    s1 /= sum;
    s2 /= sum;
    s = s1 - z / v;
    ds = -1.0 / v + std::max(0.0, s2 - s1 * s1);
  }
  double phi(double z, double& dphi) const {
    double s, ds;
    score(z, s, ds);
    dphi = inv_sqrt_alpha * (1.0 + kappa * scale * ds);
    return inv_sqrt_alpha * (z + kappa * (scale * s + bias));
  }
};

/// 6-point Lagrange interpolation of f (uniform grid lo + i h) at x; 0 outside the grid.
double interp6(const std::vector<double>& f, double lo, double h, double x) {
  const int N = static_cast<int>(f.size());
  const double pos = (x - lo) / h;
  if (pos < 0 || pos > N - 1) return 0.0;
  int i0 = static_cast<int>(std::floor(pos)) - 2;
  i0 = std::max(0, std::min(N - 6, i0));
  const double t = pos - i0;
  double r = 0;
  for (int a = 0; a < 6; ++a) {
    double w = 1;
    for (int b = 0; b < 6; ++b)
      if (b != a) w *= (t - b) / double(a - b);
    r += w * f[i0 + a];
  }
  return r;
}

struct Propagated {
  std::vector<double> f;  // density of z on the grid
  double perp_var = 1;
  bool edge_ok = true;    // the edges held negligible mass after every step
};

/// The push-forward of f through phi (increasing), on the same grid.
std::vector<double> push_forward(const std::vector<double>& f, double lo, double h, const LineStep& st, int t) {
  const int N = static_cast<int>(f.size());
  std::vector<double> img(N), dimg(N);
  for (int i = 0; i < N; ++i) img[i] = st.phi(lo + i * h, dimg[i]);
  for (int i = 0; i < N; ++i)
    if (!(dimg[i] > 0))
      throw Error("exact reference: the step map on the line folds at step t = " + std::to_string(t) +
                  " (phi_t'(z) <= 0), so the density cannot be pushed forward; no reference for this sampler");
  std::vector<double> g(N, 0.0);
  int i = 0;
  for (int j = 0; j < N; ++j) {
    const double y = lo + j * h;
    if (y < img[0] || y > img[N - 1]) continue;
    while (i < N - 2 && img[i + 1] <= y) ++i;
    // Newton for phi(z) = y on [z_i, z_i+1], from the linear interpolation, bisection when it leaves.
    double a = lo + i * h, b = a + h;
    double z = a + h * (y - img[i]) / (img[i + 1] - img[i]);
    for (int it = 0; it < kNewtonIterations; ++it) {
      double dp;
      const double p = st.phi(z, dp) - y;
      const double step = p / dp;
      if (std::abs(step) <= 1e-12 * h) {  // far below the interpolation's error
        z -= step;
        break;
      }
      if (p > 0) b = z;
      else a = z;
      const double zn = z - step;
      z = zn > a && zn < b ? zn : 0.5 * (a + b);
    }
    double dp;
    st.phi(z, dp);
    g[j] = interp6(f, lo, h, z) / dp;
  }
  return g;
}

/// Convolution with N(0, sig2) in Fourier space, on fft.size() >= f.size() + 12 sd / h points
/// (zero-padded: nothing wraps into the grid).
void gaussian_smooth(std::vector<double>& f, double h, double sig2, const Fft& fft, std::vector<double>& re,
                     std::vector<double>& im) {
  const std::size_t N = f.size(), n = fft.size();
  // Above the grid's highest frequency pi / h the multiplier exp(-sig2 w^2 / 2) is 1 to double
  // precision when sig2 (pi / h)^2 / 2 < 1e-17: nothing to do.
  if (0.5 * sig2 * (kPi / h) * (kPi / h) < 1e-17) return;
  re.assign(n, 0.0);
  im.assign(n, 0.0);
  std::copy(f.begin(), f.end(), re.begin());
  fft.run(re, im, false);
  for (std::size_t k = 0; k < n; ++k) {
    const double kk = k <= n / 2 ? double(k) : double(k) - double(n);
    const double w = 2 * kPi * kk / (double(n) * h);
    const double g = std::exp(-0.5 * sig2 * w * w);
    re[k] *= g;
    im[k] *= g;
  }
  fft.run(re, im, true);
  std::copy(re.begin(), re.begin() + N, f.begin());
}

Propagated propagate(const std::vector<LineStep>& steps, const std::vector<int>& ts, double lo, double h, int N) {
  Propagated r;
  r.f.resize(N);
  for (int i = 0; i < N; ++i) {
    const double z = lo + i * h;
    r.f[i] = std::exp(-0.5 * z * z) / std::sqrt(2 * kPi);
  }
  const int edge = std::max(1, static_cast<int>(kEdgeFraction * N));
  double sig2max = 0;
  for (const LineStep& st : steps) sig2max = std::max(sig2max, st.sig2);
  std::size_t n = 1;
  while (n < static_cast<std::size_t>(N) + static_cast<std::size_t>(std::ceil(12.0 * std::sqrt(sig2max) / h)) + 8)
    n <<= 1;
  const Fft fft(n);
  std::vector<double> re, im;
  for (std::size_t k = 0; k < steps.size(); ++k) {
    const LineStep& st = steps[k];
    r.f = push_forward(r.f, lo, h, st, ts[k]);
    if (st.sig2 > 0) gaussian_smooth(r.f, h, st.sig2, fft, re, im);
    r.perp_var = st.c_perp * st.c_perp * r.perp_var + st.sig2;
    double em = 0;
    for (int i = 0; i < edge; ++i) em += std::abs(r.f[i]) + std::abs(r.f[N - 1 - i]);
    if (em * h > kEdgeMass) r.edge_ok = false;
  }
  return r;
}

/// 1/2 int |a g1(rho) - b g2(rho)| d rho, g1, g2 the densities of s2 chi^2_k and V chi^2_k.
double inner_tv(double a, double b, double s2, double V, int k) {
  a = std::max(a, 0.0);
  b = std::max(b, 0.0);
  if (k == 0 || V == s2 || a == 0 || b == 0) return 0.5 * std::abs(a - b);
  // a g1 > b g2  <=>  log(a/b) + (k/2) log(V/s2) > (rho/2) D,  D = 1/s2 - 1/V.
  const double D = 1.0 / s2 - 1.0 / V;
  const double rho = 2.0 * (std::log(a / b) + 0.5 * k * std::log(V / s2)) / D;
  double mn;
  if (D > 0) {  // a g1 > b g2 below rho
    mn = rho <= 0 ? a : b * special::gamma_p(0.5 * k, rho / (2 * V)) + a * special::gamma_q(0.5 * k, rho / (2 * s2));
  } else {      // a g1 > b g2 above rho
    mn = rho <= 0 ? b : a * special::gamma_p(0.5 * k, rho / (2 * s2)) + b * special::gamma_q(0.5 * k, rho / (2 * V));
  }
  return std::max(0.0, 0.5 * (a + b) - mn);
}

/// log of sum_k exp(logw_k) N(z; mean_k, var) (1-D).
double line_log_density(const std::vector<double>& logw, const std::vector<double>& mean, double var, double z) {
  detail::LogSumExpAcc acc;
  for (std::size_t k = 0; k < mean.size(); ++k)
    acc.push(logw[k] - 0.5 * std::log(2 * kPi * var) - 0.5 * (z - mean[k]) * (z - mean[k]) / var);
  return acc.value();
}

struct Figures {
  double tv = 0, kl_yx = 0, kl_xy = 0;
};

Figures figures(const Propagated& pr, double lo, double h, const LineModel& target, double abar_s, double oma_s,
                int d) {
  const int N = static_cast<int>(pr.f.size());
  const int k = d - 1;
  const double s2 = target.s2, V = pr.perp_var;
  // X_s on the line and orthogonally (s = 0: the target; s = 1: its forward marginal).
  std::vector<double> ms(target.m.size());
  for (std::size_t i = 0; i < ms.size(); ++i) ms[i] = std::sqrt(abar_s) * target.m[i];
  const double vs = abar_s * s2 + oma_s;
  Figures fg;
  double kl_line = 0, klx_line = 0, pmax = 0;
  std::vector<double> lps(N);
  for (int i = 0; i < N; ++i) {
    lps[i] = line_log_density(target.logw, ms, vs, lo + i * h);
    pmax = std::max(pmax, std::exp(lps[i]));
  }
  bool kl_xy_inf = false;
  for (int i = 0; i < N; ++i) {
    const double z = lo + i * h, f = pr.f[i];
    const double lp = line_log_density(target.logw, target.m, s2, z);
    fg.tv += inner_tv(std::exp(lp), f, s2, V, k) * h;
    if (f > 0) kl_line += f * (std::log(f) - lp) * h;
    const double ps = std::exp(lps[i]);
    if (ps >= 1e-13 * pmax) {
      if (f > 0) klx_line += ps * (lps[i] - std::log(f)) * h;
      else kl_xy_inf = true;
    }
  }
  auto gauss_kl = [&](double ratio) {  // KL(N(0, r) || N(0, 1)) per coordinate times k
    const double u = ratio - 1.0;
    const double ul = std::abs(u) < 1e-3 ? u * u * (0.5 - u * (1.0 / 3 - u * 0.25)) : u - std::log1p(u);
    return 0.5 * k * ul;
  };
  fg.kl_yx = kl_line + (k > 0 ? gauss_kl(V / s2) : 0.0);
  fg.kl_xy = kl_xy_inf ? INFINITY : klx_line + (k > 0 ? gauss_kl(vs / V) : 0.0);
  return fg;
}

}  // namespace

std::string reducible_reason(const Mixture& target, const SampleOptions& opt) {
  const std::string need =
      "; reducible needs every mean on one line through the origin and one shared isotropic sd "
      "(C_k = s^2 I, the same s for all k)";
  LineModel lm;
  std::string why = line_model(target, {}, lm);
  if (!why.empty()) return "the model is not reducible: " + why + need;
  const ScoreErrorKind kind = opt.score_error.kind;
  if (kind == ScoreErrorKind::Bias && target.d > 1) {
    const std::vector<double> b = bias_unit_vector(target, opt.score_error, opt.seed);
    double c = 0;
    for (int j = 0; j < target.d; ++j) c += b[j] * lm.u[j];
    if (std::abs(std::abs(c) - 1.0) > kCollinearTol)
      return std::string("the bias score error points off the means' line (its direction is ") +
             to_string(opt.score_error.direction) + "), so the sampler's law does not reduce to the line" + need +
             ", and a score error that keeps it (none, scale, weights, gaussian; bias along the means; means only "
             "for d = 1)";
  }
  if (kind == ScoreErrorKind::Means) {
    LineModel lm2;
    why = line_model(score_model(target, opt.score_error, opt.seed), lm.u, lm2);
    if (!why.empty())
      return "the means score error moves the means off their line (" + why + ")" + need +
             ", and a score error that keeps it (none, scale, weights, gaussian; bias and means only for d = 1)";
  }
  return "";
}

Reference exact_reference(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                          const ReferenceOptions& ro) {
  const std::string why = reducible_reason(target, opt);
  if (!why.empty()) throw Error("exact reference: " + why);
  GMMDIFF_EXPECTS(opt.stop == 0 || opt.stop == 1, "--stop = ", opt.stop, " (allowed: 0 or 1)");
  GMMDIFF_EXPECTS(ro.tol > 0 && ro.min_points >= 16 && ro.max_points >= ro.min_points,
                  "exact reference: bad grid options");
  const auto t0 = std::chrono::steady_clock::now();
  const int d = target.d;
  LineModel tl, sl;
  (void)line_model(target, {}, tl);
  // The score every step uses (the perturbed model of step t under a score-error profile).
  const ScorePlan plan(target, s, opt);
  (void)line_model(plan.fixed_model().K > 0 ? plan.fixed_model() : target, tl.u, sl);
  // The steps on the line, t = T .. stop + 1 (identities left out).
  std::vector<LineStep> steps;
  std::vector<int> ts;
  double drift = 0, mmax_score = 0;
  for (int t = s.T; t > opt.stop; --t) {
    if (!(one_minus_alpha(s, t) > 0)) continue;  // an identity
    const StepCoeffs c = plan.coeffs(t);
    if (plan.per_step()) (void)line_model(plan.model(t), tl.u, sl);
    for (double m : sl.m) mmax_score = std::max(mmax_score, std::abs(m));
    LineStep st;
    st.kappa = c.kappa;
    st.inv_sqrt_alpha = c.inv_sqrt_alpha;
    st.scale = c.score_scale;
    if (!c.bias_dir.empty())
      for (int j = 0; j < d; ++j) st.bias += c.bias_dir[j] * tl.u[j];
    const double noise_in_bracket = c.kappa * c.noise_sd * c.inv_sqrt_alpha;
    st.sig2 = c.sigma * c.sigma + noise_in_bracket * noise_in_bracket;
    const double abar = s.abar[t];
    st.v = abar * sl.s2 + s.one_minus_abar[t];
    st.c_perp = (1.0 - c.kappa * c.score_scale / st.v) * c.inv_sqrt_alpha;
    const int K = static_cast<int>(sl.m.size());
    st.lb.resize(K);
    st.slope.resize(K);
    for (int k = 0; k < K; ++k) {
      st.slope[k] = std::sqrt(abar) * sl.m[k] / st.v;
      st.lb[k] = sl.logw[k] - 0.5 * abar * sl.m[k] * sl.m[k] / st.v;
    }
    drift += std::abs(c.kappa * st.bias) * c.inv_sqrt_alpha;
    steps.push_back(std::move(st));
    ts.push_back(t);
  }
  double mmax = 0;
  for (double m : tl.m) mmax = std::max(mmax, std::abs(m));
  for (double m : sl.m) mmax = std::max(mmax, std::abs(m));
  mmax = std::max(mmax, mmax_score);
  double half = mmax + 10.0 * std::max(1.0, std::sqrt(tl.s2)) + drift;

  Reference r;
  r.steps = static_cast<int>(steps.size());
  const double abar_s = s.abar[opt.stop], oma_s = s.one_minus_abar[opt.stop];
  double h = 2 * half / (ro.min_points - 1);
  double prev = NAN;
  for (;;) {
    const int N = static_cast<int>(std::llround(2 * half / h)) + 1;
    if (N > ro.max_points) break;
    const double lo = -half;
    const Propagated pr = propagate(steps, ts, lo, h, N);
    if (!pr.edge_ok) {  // mass at the edges: widen the range (same spacing) and start the levels again
      half *= 1.5;
      prev = NAN;
      continue;
    }
    const Figures fg = figures(pr, lo, h, tl, abar_s, oma_s, d);
    ++r.levels;
    r.tv = fg.tv;
    r.kl_yx = fg.kl_yx;
    r.kl_xy = fg.kl_xy;
    r.points = N;
    r.h = h;
    r.lo = lo;
    r.hi = lo + (N - 1) * h;
    r.perp_var = pr.perp_var;
    if (!std::isnan(prev)) {
      r.change = std::abs(fg.tv - prev);
      // Two grids that both miss the target's components can agree: converged needs a spacing of
      // at most an eighth of the components' sd as well.
      if (r.change < ro.tol && h <= kMaxSpacingPerSd * std::min(1.0, std::sqrt(tl.s2))) {
        r.converged = true;
        break;
      }
    }
    prev = fg.tv;
    h *= 0.5;
  }
  GMMDIFF_EXPECTS(r.levels > 0, "exact reference: the density reaches the edges of every grid up to ",
                  ro.max_points, " points");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace gmmdiff
