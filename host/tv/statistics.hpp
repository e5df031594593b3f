// gmmdiff (private to host/tv/): the statistics of the TV module: the grammar of
// TvOptions::stats and the directions the statistics project on (principal directions of the
// means, random, file, a fixed orthogonal axis). docs/tv.md, "Statistics".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"

namespace gmmdiff::tv_detail {

/// One token of TvOptions::stats.
struct StatRequest {
  enum Kind { Means, Means2d, Random, Axes, File, Radial, MeansPerp, LogP };
  Kind kind = Means;
  int count = 0;          ///< means:r, random:M, axes:m (0: the default)
  std::string path;       ///< file:PATH
  bool origin = false;    ///< radial:0 (centre at the origin)
  std::string token;      ///< as written
};
/// Parses the comma-separated statistics; throws gmmdiff::Error with one line listing what is
/// allowed on an unknown or malformed token.
std::vector<StatRequest> parse_stats(const std::string& spec);

/// Top principal directions of span{mu_k}: eigenvectors of M^T M (M the [K, d] uncentered
/// means) by subspace iteration from a fixed start, without forming d x d matrices.
struct Principal {
  int rank = 0;                   ///< numerical rank of M (counted within the iterated block)
  std::vector<double> dirs;       ///< [r, d] orthonormal, r = min(r_max, rank), sign fixed
  std::vector<double> singular;   ///< [r] singular values of M along dirs
  int iterations = 0;
};
Principal principal_directions(const Mixture& m, int r_max);

/// M unit directions in R^d from Philox (stream kStreamAux, particle kAuxTvRandom + i), [M, d].
std::vector<double> random_directions(int d, int M, uint64_t seed);
constexpr uint64_t kAuxTvRandom = 0x545600000000ull;     ///< "TV": random directions
constexpr uint64_t kAuxTvPrincipal = 0x545650000000ull;  ///< start block of principal_directions

/// Rows of a .npy file ([d] or [m, d]) as unit directions; throws on a d mismatch or a zero row.
/// Each row is scaled by its largest |value| before its norm is taken, so a row of huge (1e300)
/// or tiny (1e-300) values is the same direction as any other multiple of it.
std::vector<double> file_directions(const std::string& path, int d);
/// The same for an array already read from `path`.
std::vector<double> file_directions(const NpyArray& a, const std::string& path, int d);

/// A unit vector orthogonal to unit u (deterministic: from the axis where |u_j| is smallest).
std::vector<double> orthogonal_unit(const std::vector<double>& u);

}  // namespace gmmdiff::tv_detail
