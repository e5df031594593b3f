// gmmdiff: the mixture model: validation, JSON, presets, reference density and score (double).
#include "gmmdiff/model.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#include "io/atomic_file.hpp"
#include "io/input.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"

namespace gmmdiff {

namespace {

constexpr double kWeightSumTol = 1e-6;  // |sum pi_k - 1| allowed without --normalize-weights
constexpr std::size_t kMaxModelElements = std::size_t(1) << 31;  // K*d: cuBLAS int dimensions
constexpr double kMinVariance = std::numeric_limits<double>::min();  // 2.2e-308: 1/variance stays finite

bool finite(double x) { return std::isfinite(x); }

void check_all_finite(const std::vector<double>& v, const char* what) {
  for (std::size_t i = 0; i < v.size(); ++i)
    GMMDIFF_EXPECTS(finite(v[i]), "model: ", what, "[", i, "] is ", v[i], " (must be finite)");
}

}  // namespace

bool Mixture::unit_covariance() const {
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < (cov == Covariance::Isotropic ? 1 : d); ++j)
      if (var(k, j) != 1.0) return false;
  return true;
}

double Mixture::max_mean_norm() const {
  double best = 0;
  for (int k = 0; k < K; ++k) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += mean(k)[j] * mean(k)[j];
    best = std::max(best, std::sqrt(s));
  }
  return best;
}

void validate(Mixture& m, const ModelOptions& opt) {
  GMMDIFF_EXPECTS(m.K >= 1, "model: K = ", m.K, " (need at least one component)");
  GMMDIFF_EXPECTS(m.d >= 1, "model: d = ", m.d, " (need dimension >= 1)");
  GMMDIFF_EXPECTS(static_cast<std::size_t>(m.K) * static_cast<std::size_t>(m.d) <= kMaxModelElements,
                  "model: K x d = ", m.K, " x ", m.d, " does not fit (at most 2^31 mean entries)");
  GMMDIFF_EXPECTS(m.weights.size() == static_cast<std::size_t>(m.K), "model: weights has ",
                  m.weights.size(), " entries but means has ", m.K, " rows");
  GMMDIFF_EXPECTS(m.means.size() == static_cast<std::size_t>(m.K) * m.d, "model: means has ",
                  m.means.size(), " values, expected K x d = ", m.K, " x ", m.d);
  check_all_finite(m.weights, "weights");
  for (std::size_t i = 0; i < m.means.size(); ++i)
    GMMDIFF_EXPECTS(finite(m.means[i]), "model: means[", i / m.d, "][", i % m.d, "] is ", m.means[i],
                    " (must be finite)");
  for (int k = 0; k < m.K; ++k)
    GMMDIFF_EXPECTS(m.weights[k] > 0, "model: weights[", k, "] = ", m.weights[k],
                    " (weights must be positive)");
  const double sum = std::accumulate(m.weights.begin(), m.weights.end(), 0.0);
  if (std::fabs(sum - 1.0) > kWeightSumTol) {
    GMMDIFF_EXPECTS(opt.normalize_weights, "model: weights sum to ", sum,
                    ", not 1 (pass --normalize-weights to rescale them)");
  }
  for (double& w : m.weights) w /= sum;
  if (m.cov == Covariance::Isotropic) {
    if (m.sd.size() == 1 && m.K > 1) m.sd.assign(m.K, m.sd[0]);
    GMMDIFF_EXPECTS(m.sd.size() == static_cast<std::size_t>(m.K), "model: sd has ", m.sd.size(),
                    " entries but there are ", m.K, " components (give 1 or K values)");
    check_all_finite(m.sd, "sd");
    for (int k = 0; k < m.K; ++k) {
      GMMDIFF_EXPECTS(m.sd[k] > 0, "model: sd[", k, "] = ", m.sd[k], " (must be positive)");
      // The variance sd^2 is what every formula uses: it must be a finite, normal double.
      GMMDIFF_EXPECTS(std::isfinite(m.sd[k] * m.sd[k]), "model: sd[", k, "] = ", m.sd[k],
                      ": its square (the variance) overflows a double (need sd < 1.3e154)");
      GMMDIFF_EXPECTS(m.sd[k] * m.sd[k] >= kMinVariance, "model: sd[", k, "] = ", m.sd[k],
                      ": its square (the variance) underflows a double (need sd >= 1.5e-154)");
    }
    m.var_diag.clear();
  } else {
    GMMDIFF_EXPECTS(m.var_diag.size() == static_cast<std::size_t>(m.K) * m.d, "model: var_diag has ",
                    m.var_diag.size(), " values, expected K x d = ", m.K, " x ", m.d);
    check_all_finite(m.var_diag, "var_diag");
    for (std::size_t i = 0; i < m.var_diag.size(); ++i) {
      GMMDIFF_EXPECTS(m.var_diag[i] > 0, "model: var_diag[", i / m.d, "][", i % m.d, "] = ",
                      m.var_diag[i], " (must be positive)");
      GMMDIFF_EXPECTS(m.var_diag[i] >= kMinVariance, "model: var_diag[", i / m.d, "][", i % m.d, "] = ",
                      m.var_diag[i],
                      " is below the smallest normal double (need >= 2.2e-308: its inverse must be finite)");
    }
    m.sd.clear();
  }
  // E|X|^2 of each component, sum_j C_kj + |mu_k|^2, must be a double: the samples' squared norms,
  // the radial statistic and the step arithmetic all hold numbers of that size.
  for (int k = 0; k < m.K; ++k) {
    double second = 0;
    for (int j = 0; j < m.d; ++j) second += m.var(k, j) + m.mean(k)[j] * m.mean(k)[j];
    GMMDIFF_EXPECTS(std::isfinite(second), "model: component ", k,
                    ": E|X|^2 = sum of its variances + |mu|^2 overflows a double (scale the model down)");
  }
}

// ---------------------------------------------------------------- JSON

namespace {

using nlohmann::json;

/// A .npy named by a model file: an absolute path as it is, a relative one from the model's folder.
std::string npy_path(const std::string& model_path, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  const auto p = model_path.find_last_of('/');
  return (p == std::string::npos ? std::string() : model_path.substr(0, p + 1)) + name;
}

std::vector<double> numbers(const json& j, const std::string& where) {
  std::vector<double> out;
  GMMDIFF_EXPECTS(j.is_array(), where, " must be an array of numbers");
  for (std::size_t i = 0; i < j.size(); ++i) {
    GMMDIFF_EXPECTS(j[i].is_number(), where, "[", i, "] is not a number");
    out.push_back(j[i].get<double>());
  }
  return out;
}

// Rows x cols from an array of arrays; sets rows/cols.
std::vector<double> matrix(const json& j, const std::string& where, int& rows, int& cols) {
  GMMDIFF_EXPECTS(j.is_array(), where, " must be an array of rows (K rows of d numbers)");
  GMMDIFF_EXPECTS(!j.empty(), where, " is empty: no components (need K >= 1 rows)");
  rows = static_cast<int>(j.size());
  cols = -1;
  std::vector<double> out;
  for (std::size_t r = 0; r < j.size(); ++r) {
    const auto row = numbers(j[r], where + "[" + std::to_string(r) + "]");
    if (cols < 0) cols = static_cast<int>(row.size());
    GMMDIFF_EXPECTS(static_cast<int>(row.size()) == cols, where, "[", r, "] has ", row.size(),
                    " values but row 0 has ", cols);
    out.insert(out.end(), row.begin(), row.end());
  }
  GMMDIFF_EXPECTS(cols >= 1, where, " rows are empty (d must be >= 1)");
  return out;
}

std::vector<double> matrix_npy(const std::string& file, const std::string& where, int& rows, int& cols,
                               const ModelOptions& opt) {
  if (opt.files_read) opt.files_read->push_back(file);
  NpyArray a = read_npy(file);
  GMMDIFF_EXPECTS(a.shape.size() == 2 || a.shape.size() == 1, where, ": ", file,
                  " must be a 1-D or 2-D array, has ", a.shape.size(), " dimensions");
  const uint64_t r = a.shape.size() == 1 ? 1 : a.rows(), c = a.shape.size() == 1 ? a.shape[0] : a.cols();
  GMMDIFF_EXPECTS(r <= uint64_t(1) << 30 && c <= uint64_t(1) << 30, where, ": ", file, " is ", r, " x ", c,
                  " (at most 2^30 rows and columns)");
  rows = static_cast<int>(r);
  cols = static_cast<int>(c);
  return std::move(a.data);
}

}  // namespace

Mixture load_model_json(const std::string& path, const ModelOptions& opt) {
  if (opt.files_read) opt.files_read->push_back(path);
  const json j = parse_json(read_input_file(path, "model file"), path);
  GMMDIFF_EXPECTS(j.is_object(), path, ": the model must be a JSON object");
  static const std::set<std::string> allowed = {"weights", "means", "means_npy", "sd",
                                                "var_diag", "var_diag_npy", "name", "comment"};
  for (auto it = j.begin(); it != j.end(); ++it)
    GMMDIFF_EXPECTS(allowed.count(it.key()), path, ": unknown key '", it.key(),
                    "' (allowed: weights, means | means_npy, sd | var_diag | var_diag_npy, name, comment)");
  Mixture m;
  try {
    int rows = 0, cols = 0;
    GMMDIFF_EXPECTS(j.contains("means") != j.contains("means_npy"),
                    "give exactly one of 'means' and 'means_npy'");
    if (j.contains("means")) m.means = matrix(j["means"], "means", rows, cols);
    else {
      GMMDIFF_EXPECTS(j["means_npy"].is_string(), "means_npy must be a file name");
      m.means = matrix_npy(npy_path(path, j["means_npy"].get<std::string>()), "means_npy", rows, cols, opt);
    }
    m.K = rows;
    m.d = cols;
    GMMDIFF_EXPECTS(j.contains("weights"), "missing field 'weights' (K positive numbers summing to 1)");
    m.weights = numbers(j["weights"], "weights");
    const int cov_keys = j.contains("sd") + j.contains("var_diag") + j.contains("var_diag_npy");
    GMMDIFF_EXPECTS(cov_keys <= 1, "give at most one of 'sd', 'var_diag', 'var_diag_npy'");
    if (j.contains("var_diag") || j.contains("var_diag_npy")) {
      m.cov = Covariance::Diagonal;
      int vr = 0, vc = 0;
      if (j.contains("var_diag")) m.var_diag = matrix(j["var_diag"], "var_diag", vr, vc);
      else {
        GMMDIFF_EXPECTS(j["var_diag_npy"].is_string(), "var_diag_npy must be a file name");
        m.var_diag = matrix_npy(npy_path(path, j["var_diag_npy"].get<std::string>()), "var_diag_npy", vr, vc, opt);
      }
      GMMDIFF_EXPECTS(vr == m.K && vc == m.d, "var_diag is ", vr, " x ", vc, " but means is ", m.K,
                      " x ", m.d);
    } else if (j.contains("sd")) {
      m.sd = j["sd"].is_number() ? std::vector<double>{j["sd"].get<double>()} : numbers(j["sd"], "sd");
    } else {
      m.sd = {1.0};
    }
    validate(m, opt);
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    throw Error(path + ": " + msg);
  }
  return m;
}

void save_model_json(const Mixture& m, const std::string& path) {
  json j;
  j["weights"] = m.weights;
  json means = json::array();
  for (int k = 0; k < m.K; ++k) means.push_back(std::vector<double>(m.mean(k), m.mean(k) + m.d));
  j["means"] = means;
  if (m.cov == Covariance::Isotropic) j["sd"] = m.sd;
  else {
    json v = json::array();
    for (int k = 0; k < m.K; ++k)
      v.push_back(std::vector<double>(m.var_diag.begin() + std::size_t(k) * m.d,
                                      m.var_diag.begin() + std::size_t(k + 1) * m.d));
    j["var_diag"] = v;
  }
  write_file_atomic(path, j.dump(1) + "\n");
}

// ---------------------------------------------------------------- presets

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"gaussian", "two-point", "random-sphere", "simplex"};
  return names;
}

Mixture make_preset(const PresetParams& p, const ModelOptions& opt) {
  GMMDIFF_EXPECTS(p.d >= 1, "--d = ", p.d, " (need d >= 1)");
  GMMDIFF_EXPECTS(std::isfinite(p.radius) && p.radius >= 0, "--radius = ", p.radius,
                  " (need a finite radius >= 0)");
  Mixture m;
  m.d = p.d;
  const std::size_t d = static_cast<std::size_t>(p.d);
  if (p.name == "gaussian") {
    GMMDIFF_EXPECTS(p.K == 0 || p.K == 1, "preset gaussian has K = 1 (got --K ", p.K, ")");
    m.K = 1;
    m.means.assign(d, 0.0);
    m.means[0] = p.radius;
  } else if (p.name == "two-point") {
    GMMDIFF_EXPECTS(p.K == 0 || p.K == 2, "preset two-point has K = 2 (got --K ", p.K, ")");
    m.K = 2;
    m.means.assign(2 * d, 0.0);
    m.means[0] = p.radius;
    m.means[d] = -p.radius;
  } else if (p.name == "random-sphere") {
    m.K = p.K > 0 ? p.K : p.d;
    GMMDIFF_EXPECTS(static_cast<std::size_t>(m.K) * d <= kMaxModelElements, "random-sphere: K x d = ",
                    m.K, " x ", d, " does not fit (at most 2^31 mean entries)");
    m.means.assign(static_cast<std::size_t>(m.K) * d, 0.0);
    for (int k = 0; k < m.K; ++k) {
      double* mu = m.means.data() + std::size_t(k) * d;
      double norm2 = 0;
      for (std::size_t b = 0; b * 4 < d; ++b) {
        double z[4];
        detail::philox_normal4<double>(p.seed, kStreamAux, 1000 + static_cast<uint64_t>(k), 0,
                                       static_cast<uint32_t>(b), z);
        for (std::size_t c = 0; c < 4 && 4 * b + c < d; ++c) {
          mu[4 * b + c] = z[c];
          norm2 += z[c] * z[c];
        }
      }
      const double s = p.radius / std::sqrt(norm2);
      for (std::size_t j = 0; j < d; ++j) mu[j] *= s;
    }
  } else if (p.name == "simplex") {
    m.K = p.K > 0 ? p.K : p.d + 1;
    GMMDIFF_EXPECTS(m.K <= p.d + 1, "preset simplex needs K <= d + 1 (got K = ", m.K, ", d = ", p.d, ")");
    m.means.assign(static_cast<std::size_t>(m.K) * d, 0.0);
    // Vertex k in the Helmert basis of 1^perp in R^K: coordinate i (i = 1..K-1) is h_i[k],
    // h_i = (1, ..., 1, -i, 0, ...) / sqrt(i (i + 1)); all vertices have norm sqrt((K-1)/K).
    if (m.K > 1) {
      const double scale = p.radius / std::sqrt((m.K - 1.0) / m.K);
      for (int k = 0; k < m.K; ++k)
        for (int i = 1; i < m.K; ++i) {
          const double h = k < i ? 1.0 : (k == i ? -double(i) : 0.0);
          m.means[std::size_t(k) * d + (i - 1)] = scale * h / std::sqrt(double(i) * (i + 1));
        }
    }
  } else {
    throw Error("unknown preset '" + p.name + "' (allowed: gaussian, two-point, random-sphere, simplex)");
  }
  m.weights = p.weights.empty() ? std::vector<double>(m.K, 1.0 / m.K) : p.weights;
  m.sd = p.sd.empty() ? std::vector<double>{1.0} : p.sd;
  m.cov = Covariance::Isotropic;
  validate(m, opt);
  return m;
}

// ---------------------------------------------------------------- density and score

namespace {
// log N(x; sqrt(abar) mu_k, V_k) for every k, and V for the score.
void component_logits(const Mixture& m, double abar, const double* x, std::vector<double>& logit) {
  const double sa = std::sqrt(abar), oma = 1.0 - abar;
  constexpr double kLog2Pi = 1.8378770664093454836;
  logit.resize(m.K);
  for (int k = 0; k < m.K; ++k) {
    double q = 0, logdet = 0;
    const double* mu = m.mean(k);
    for (int j = 0; j < m.d; ++j) {
      const double v = abar * m.var(k, j) + oma;
      const double r = x[j] - sa * mu[j];
      q += r * r / v;
      logdet += std::log(v);
    }
    logit[k] = std::log(m.weights[k]) - 0.5 * (q + logdet + m.d * kLog2Pi);
  }
}
double logsumexp(const std::vector<double>& v) {
  const double mx = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (double x : v) s += std::exp(x - mx);
  return mx + std::log(s);
}
}  // namespace

double log_density(const Mixture& m, const double* x) {
  std::vector<double> l;
  component_logits(m, 1.0, x, l);
  return logsumexp(l);
}

void exact_score(const Mixture& m, double abar, const double* x, double* out, double* weights_out) {
  std::vector<double> l;
  component_logits(m, abar, x, l);
  const double lse = logsumexp(l);
  const double sa = std::sqrt(abar), oma = 1.0 - abar;
  std::fill(out, out + m.d, 0.0);
  for (int k = 0; k < m.K; ++k) {
    const double w = std::exp(l[k] - lse);
    if (weights_out) weights_out[k] = w;
    const double* mu = m.mean(k);
    for (int j = 0; j < m.d; ++j) {
      const double v = abar * m.var(k, j) + oma;
      out[j] += w * (sa * mu[j] - x[j]) / v;
    }
  }
}

Mixture forward_marginal(const Mixture& m, double abar) {
  Mixture f = m;
  const double sa = std::sqrt(abar), oma = 1.0 - abar;
  for (double& x : f.means) x *= sa;
  if (m.cov == Covariance::Isotropic)
    for (double& s : f.sd) s = std::sqrt(abar * s * s + oma);
  else
    for (double& v : f.var_diag) v = abar * v + oma;
  return f;
}

}  // namespace gmmdiff
