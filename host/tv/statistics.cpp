// gmmdiff: the statistics of the TV module (tv/statistics.hpp, docs/tv.md): parsing
// TvOptions::stats, principal directions of the means, random and file directions.
#include "tv/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <cblas.h>
#include <omp.h>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"

namespace gmmdiff {
namespace tv_detail {

namespace {

constexpr const char* kAllowed =
    "allowed: means[:r], means2d, meansperp, random:M, axes[:m], file:PATH.npy, radial[:0], logp";
constexpr int kMaxCount = 100000;

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

int parse_count(const std::string& text, const std::string& token) {
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  GMMDIFF_EXPECTS(used == text.size() && !text.empty() && v >= 1 && v <= kMaxCount, "--stat: '",
                  token, "': the count must be an integer in [1, ", kMaxCount, "] (", kAllowed, ")");
  return static_cast<int>(v);
}

}  // namespace

std::vector<StatRequest> parse_stats(const std::string& spec) {
  std::vector<StatRequest> out;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = spec.find(',', start);
    const std::string token =
        trim(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    start = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    GMMDIFF_EXPECTS(!token.empty(), "--stat: empty statistic in '", spec, "' (", kAllowed, ")");
    const std::size_t colon = token.find(':');
    const std::string head = token.substr(0, colon);
    const bool has_arg = colon != std::string::npos;
    const std::string arg = has_arg ? token.substr(colon + 1) : "";
    StatRequest r;
    r.token = token;
    if (head == "means") {
      r.kind = StatRequest::Means;
      if (has_arg) r.count = parse_count(arg, token);
    } else if (head == "means2d" && !has_arg) {
      r.kind = StatRequest::Means2d;
    } else if (head == "meansperp" && !has_arg) {
      r.kind = StatRequest::MeansPerp;
    } else if (head == "logp" && !has_arg) {
      r.kind = StatRequest::LogP;
    } else if (head == "random") {
      GMMDIFF_EXPECTS(has_arg, "--stat: 'random' needs a count, e.g. random:8 (", kAllowed, ")");
      r.kind = StatRequest::Random;
      r.count = parse_count(arg, token);
    } else if (head == "axes") {
      r.kind = StatRequest::Axes;
      if (has_arg) r.count = parse_count(arg, token);
    } else if (head == "file") {
      GMMDIFF_EXPECTS(has_arg && !arg.empty(), "--stat: 'file' needs a path, e.g. file:dirs.npy (",
                      kAllowed, ")");
      r.kind = StatRequest::File;
      r.path = arg;
    } else if (head == "radial") {
      r.kind = StatRequest::Radial;
      GMMDIFF_EXPECTS(!has_arg || arg == "0", "--stat: '", token,
                      "': radial takes no argument or ':0' (centre at the origin) (", kAllowed, ")");
      r.origin = has_arg;
    } else {
      throw Error(detail::cat("--stat: unknown statistic '", token, "' (", kAllowed, ")"));
    }
    out.push_back(r);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Principal directions

namespace {

// Orthonormalises the c columns of V ([d][c], row-major) in place by modified Gram-Schmidt,
// twice; drops columns that are (numerically) in the span of the earlier ones. Returns the new c.
int orthonormalize_columns(std::vector<double>& V, int d, int c) {
  std::vector<std::vector<double>> cols;
  for (int a = 0; a < c; ++a) {
    std::vector<double> v(d);
    for (int j = 0; j < d; ++j) v[j] = V[static_cast<std::size_t>(j) * c + a];
    double before = 0;
    for (double x : v) before += x * x;
    before = std::sqrt(before);
    if (!(before > 0)) continue;
    for (int pass = 0; pass < 2; ++pass) {
      for (const auto& q : cols) {
        double dot = 0;
        for (int j = 0; j < d; ++j) dot += q[j] * v[j];
        for (int j = 0; j < d; ++j) v[j] -= dot * q[j];
      }
    }
    double after = 0;
    for (double x : v) after += x * x;
    after = std::sqrt(after);
    if (!(after > 1e-10 * before)) continue;
    for (double& x : v) x /= after;
    cols.push_back(std::move(v));
  }
  const int nc = static_cast<int>(cols.size());
  V.assign(static_cast<std::size_t>(d) * nc, 0.0);
  for (int a = 0; a < nc; ++a)
    for (int j = 0; j < d; ++j) V[static_cast<std::size_t>(j) * nc + a] = cols[a][j];
  return nc;
}

// Eigen-decomposition of a symmetric c x c matrix by cyclic Jacobi. On return, lambda holds the
// eigenvalues sorted descending and E ([c][c], row-major) the eigenvectors in its columns.
void symmetric_eigen(std::vector<double> A, int c, std::vector<double>& lambda, std::vector<double>& E) {
  E.assign(static_cast<std::size_t>(c) * c, 0.0);
  for (int i = 0; i < c; ++i) E[i * c + i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, tot = 0;
    for (int i = 0; i < c; ++i)
      for (int j = 0; j < c; ++j) {
        tot += A[i * c + j] * A[i * c + j];
        if (i != j) off += A[i * c + j] * A[i * c + j];
      }
    if (off <= 1e-30 * tot || off == 0) break;
    for (int p = 0; p < c; ++p)
      for (int q = p + 1; q < c; ++q) {
        const double apq = A[p * c + q];
        if (apq == 0) continue;
        const double theta = (A[q * c + q] - A[p * c + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double cs = 1 / std::sqrt(t * t + 1), sn = t * cs;
        for (int k = 0; k < c; ++k) {  // A <- A J (columns p, q)
          const double akp = A[k * c + p], akq = A[k * c + q];
          A[k * c + p] = cs * akp - sn * akq;
          A[k * c + q] = sn * akp + cs * akq;
        }
        for (int k = 0; k < c; ++k) {  // A <- J^T A (rows p, q)
          const double apk = A[p * c + k], aqk = A[q * c + k];
          A[p * c + k] = cs * apk - sn * aqk;
          A[q * c + k] = sn * apk + cs * aqk;
        }
        for (int k = 0; k < c; ++k) {
          const double ekp = E[k * c + p], ekq = E[k * c + q];
          E[k * c + p] = cs * ekp - sn * ekq;
          E[k * c + q] = sn * ekp + cs * ekq;
        }
      }
  }
  std::vector<int> order(c);
  for (int i = 0; i < c; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return A[x * c + x] > A[y * c + y]; });
  lambda.resize(c);
  std::vector<double> E2(E.size());
  for (int a = 0; a < c; ++a) {
    lambda[a] = A[order[a] * c + order[a]];
    for (int k = 0; k < c; ++k) E2[k * c + a] = E[k * c + order[a]];
  }
  E.swap(E2);
}

constexpr double kUnscaledMax = 1e100;  // |means| beyond (or below 1/it): rescaled (principal_directions)
constexpr uint64_t kPrincipalSeed = 0x6d65616e73ull;  // "means": a fixed start, not the user seed
constexpr double kRitzTol = 1e-8;  // stop when the top Ritz values change by less (relative)

}  // namespace

Principal principal_directions(const Mixture& mix, int r_max) {
  Principal out;
  const int K = mix.K, d = mix.d;
  const double* M = mix.means.data();
  double maxabs = 0;
  for (double x : mix.means) maxabs = std::max(maxabs, std::fabs(x));
  if (!(maxabs > 0) || r_max < 1) return out;
  // W = M V is rescaled by 1/maxabs when the means are so large (or small) that W^T W, a sum of K
  // squares, would overflow (underflow); the directions do not depend on the scale. Ordinary means
  // are not rescaled at all (wscale = 1), so their directions stay bit for bit what they were.
  const double wscale = (maxabs > kUnscaledMax || maxabs < 1 / kUnscaledMax) ? 1 / maxabs : 1.0;

  // Block size: oversampled, so that the top r converge faster and rank <= p is resolved exactly.
  int p = std::min(d, std::max(r_max + 4, 2 * r_max));
  std::vector<double> V(static_cast<std::size_t>(d) * p);
  for (int a = 0; a < p; ++a)
    for (int j0 = 0; j0 < d; j0 += 4) {
      double z[4];
      detail::philox_normal4<double>(kPrincipalSeed, kStreamAux, kAuxTvPrincipal + a, 0,
                                     static_cast<uint32_t>(j0 / 4), z);
      for (int t = 0; t < 4 && j0 + t < d; ++t) V[static_cast<std::size_t>(j0 + t) * p + a] = z[t];
    }
  int c = orthonormalize_columns(V, d, p);

  // Work cap: each iteration reads M twice (4 K d c flops); stop at ~2e10 flops or 100 iterations.
  // Directions need not be converged to be valid: any unit direction gives a lower bound.
  const double per_iter = 4.0 * K * static_cast<double>(d) * std::max(c, 1);
  const int max_iter = static_cast<int>(std::clamp(2e10 / per_iter, 3.0, 100.0));
  std::vector<double> W, H, lambda, E, prev;
  constexpr int kBlock = 256;  // rows of M (or coordinates) per BLAS call
  for (int it = 0;; ++it) {
    // W = M V  [K, c]: blocks of rows, BLAS single-threaded inside each (deterministic).
    W.assign(static_cast<std::size_t>(K) * c, 0.0);
    const int kblocks = (K + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < kblocks; ++bi) {
      const int k0 = bi * kBlock, kb = std::min(K, k0 + kBlock) - k0;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kb, c, d, wscale, M + static_cast<std::size_t>(k0) * d, d,
                  V.data(), c, 0.0, W.data() + static_cast<std::size_t>(k0) * c, c);
    }
    // H = W^T W  [c, c]: Rayleigh-Ritz on span(V).
    H.assign(static_cast<std::size_t>(c) * c, 0.0);
    for (int k = 0; k < K; ++k) {
      const double* w = W.data() + static_cast<std::size_t>(k) * c;
      for (int a = 0; a < c; ++a)
        for (int b = 0; b < c; ++b) H[a * c + b] += w[a] * w[b];
    }
    symmetric_eigen(H, c, lambda, E);
    out.iterations = it + 1;
    bool converged = false;
    if (!prev.empty() && static_cast<int>(prev.size()) == c) {
      double change = 0;
      for (int a = 0; a < std::min(c, r_max); ++a) change = std::max(change, std::fabs(lambda[a] - prev[a]));
      converged = change <= kRitzTol * lambda[0];
    }
    if (converged || it + 1 >= max_iter || c <= 0) break;
    prev = lambda;
    // Z = M^T W  [d, c], then V = orth(Z). Blocks of coordinates, each one BLAS call over all k.
    // Z is scaled by wscale too: Z = M^T M V of means near 1e154 held values whose squares
    // overflow, and orthonormalize_columns dropped every column (the means "spanned no direction").
    std::vector<double> Z(static_cast<std::size_t>(d) * c, 0.0);
    const int jblocks = (d + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < jblocks; ++bi) {
      const int j0 = bi * kBlock, jb = std::min(d, j0 + kBlock) - j0;
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, jb, c, K, wscale, M + j0, d, W.data(), c, 0.0,
                  Z.data() + static_cast<std::size_t>(j0) * c, c);
    }
    V.swap(Z);
    c = orthonormalize_columns(V, d, c);
    if (c == 0) break;
  }
  if (c == 0 || !(lambda.size() > 0) || !(lambda[0] > 0)) return out;
  int rank = 0;
  for (int a = 0; a < c; ++a)
    if (lambda[a] > 1e-20 * lambda[0]) ++rank;
  out.rank = rank;
  const int r = std::min(r_max, rank);
  out.dirs.assign(static_cast<std::size_t>(r) * d, 0.0);
  out.singular.resize(r);
  for (int a = 0; a < r; ++a) {
    double* u = out.dirs.data() + static_cast<std::size_t>(a) * d;
    for (int j = 0; j < d; ++j) {
      double s = 0;
      for (int b = 0; b < c; ++b) s += V[static_cast<std::size_t>(j) * c + b] * E[b * c + a];
      u[j] = s;
    }
    double nrm = 0;
    for (int j = 0; j < d; ++j) nrm += u[j] * u[j];
    nrm = std::sqrt(nrm);
    int jmax = 0;
    for (int j = 0; j < d; ++j)
      if (std::fabs(u[j]) > std::fabs(u[jmax]) * (1 + 1e-12)) jmax = j;
    const double sign = u[jmax] < 0 ? -1.0 : 1.0;
    for (int j = 0; j < d; ++j) u[j] *= sign / nrm;
    out.singular[a] = std::sqrt(std::max(0.0, lambda[a])) / wscale;
  }
  return out;
}

std::vector<double> random_directions(int d, int M, uint64_t seed) {
  std::vector<double> out(static_cast<std::size_t>(M) * d);
  for (int i = 0; i < M; ++i) {
    double* u = out.data() + static_cast<std::size_t>(i) * d;
    for (int j0 = 0; j0 < d; j0 += 4) {
      double z[4];
      detail::philox_normal4<double>(seed, kStreamAux, kAuxTvRandom + static_cast<uint64_t>(i), 0,
                                     static_cast<uint32_t>(j0 / 4), z);
      for (int t = 0; t < 4 && j0 + t < d; ++t) u[j0 + t] = z[t];
    }
    double nrm = 0;
    for (int j = 0; j < d; ++j) nrm += u[j] * u[j];
    nrm = std::sqrt(nrm);
    for (int j = 0; j < d; ++j) u[j] /= nrm;  // nrm > 0: Box-Muller radii are never 0
  }
  return out;
}

std::vector<double> file_directions(const std::string& path, int d) { return file_directions(read_npy(path), path, d); }

std::vector<double> file_directions(const NpyArray& a, const std::string& path, int d) {
  GMMDIFF_EXPECTS(a.shape.size() == 1 || a.shape.size() == 2, "--stat file:", path,
                  ": directions must be a [d] or [m, d] array, got ", a.shape.size(), " dimensions");
  const uint64_t rows = a.shape.size() == 1 ? 1 : a.shape[0];
  const uint64_t cols = a.shape.size() == 1 ? a.shape[0] : a.shape[1];
  GMMDIFF_EXPECTS(cols == static_cast<uint64_t>(d), "--stat file:", path, ": directions have d = ",
                  cols, " but the model has d = ", d);
  GMMDIFF_EXPECTS(rows >= 1, "--stat file:", path, ": no directions (0 rows)");
  std::vector<double> out(a.data.begin(), a.data.end());
  for (uint64_t i = 0; i < rows; ++i) {
    double* u = out.data() + i * d;
    double big = 0;
    for (int j = 0; j < d; ++j) {
      GMMDIFF_EXPECTS(std::isfinite(u[j]), "--stat file:", path, ": row ", i, " holds a NaN or Inf");
      big = std::max(big, std::fabs(u[j]));
    }
    GMMDIFF_EXPECTS(big > 0, "--stat file:", path, ": row ", i, " is zero (directions must be non-zero)");
    // Scaled first: squaring 1e200 would overflow (a zero direction, TV 0) and 1e-200 underflow.
    double nrm = 0;
    for (int j = 0; j < d; ++j) {
      u[j] /= big;
      nrm += u[j] * u[j];
    }
    nrm = std::sqrt(nrm);
    for (int j = 0; j < d; ++j) u[j] /= nrm;
  }
  return out;
}

std::vector<double> orthogonal_unit(const std::vector<double>& u) {
  const int d = static_cast<int>(u.size());
  int jmin = 0;
  for (int j = 1; j < d; ++j)
    if (std::fabs(u[j]) < std::fabs(u[jmin])) jmin = j;
  std::vector<double> v(d, 0.0);
  v[jmin] = 1.0;
  for (int pass = 0; pass < 2; ++pass) {
    double dot = 0;
    for (int j = 0; j < d; ++j) dot += u[j] * v[j];
    for (int j = 0; j < d; ++j) v[j] -= dot * u[j];
  }
  double nrm = 0;
  for (double x : v) nrm += x * x;
  nrm = std::sqrt(nrm);
  for (double& x : v) x /= nrm;
  return v;
}

}  // namespace tv_detail
}  // namespace gmmdiff
