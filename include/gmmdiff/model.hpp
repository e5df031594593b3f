// gmmdiff: the Gaussian mixture target X_0 ~ sum_k pi_k N(mu_k, C_k) (THEORY.md, Target).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gmmdiff {

/// Covariance structure of the components: C_k = s_k^2 I (isotropic) or C_k = diag(c_k).
enum class Covariance { Isotropic, Diagonal };

/// A validated mixture. Everything is stored in double; the sampler converts per step.
struct Mixture {
  int K = 0;                    ///< number of components, >= 1
  int d = 0;                    ///< dimension, >= 1
  std::vector<double> weights;  ///< [K], positive, sum to 1
  std::vector<double> means;    ///< [K, d] row-major
  Covariance cov = Covariance::Isotropic;
  std::vector<double> sd;        ///< [K] per-component isotropic sd (used when cov == Isotropic)
  std::vector<double> var_diag;  ///< [K, d] per-component diagonal variances (cov == Diagonal)

  const double* mean(int k) const { return means.data() + static_cast<std::size_t>(k) * d; }
  /// Variance of component k along coordinate j.
  double var(int k, int j) const {
    return cov == Covariance::Isotropic ? sd[k] * sd[k] : var_diag[static_cast<std::size_t>(k) * d + j];
  }
  /// True when every component has C_k = I (the seed papers' setting, s_k = 1).
  bool unit_covariance() const;
  /// Largest |mu_k|.
  double max_mean_norm() const;
};

/// Options that relax validation.
struct ModelOptions {
  bool normalize_weights = false;  ///< accept weights that do not sum to 1 and rescale them
  /// When set, load_model_json appends every file it reads (the JSON, then its .npy files), so
  /// that a caller can refuse an output that would replace one of them.
  std::vector<std::string>* files_read = nullptr;
};

/// Throws gmmdiff::Error naming the first bad field: sizes, positivity, finiteness, sum of weights.
void validate(Mixture& m, const ModelOptions& opt = {});

/// Reads a model JSON file:
/// {"weights": [...], "means": [[...], ...] | "means_npy": "f.npy", "sd": 1.0 | [...],
///  "var_diag": [[...]] | "var_diag_npy": "f.npy"}; a relative .npy path is taken from the JSON
/// file's folder, an absolute one as it is. Unknown and repeated keys are an error, and so is a
/// path that is not a regular file. The result is validated.
Mixture load_model_json(const std::string& path, const ModelOptions& opt = {});
/// Writes a model as JSON (means inline), atomically.
void save_model_json(const Mixture& m, const std::string& path);

/// Parameters of the built-in families.
struct PresetParams {
  std::string name = "two-point";  ///< gaussian | two-point | random-sphere | simplex
  int d = 2;
  int K = 0;                 ///< 0: the family's default (gaussian 1, two-point 2, others d)
  double radius = 2.0;
  std::vector<double> sd = {1.0};  ///< one value for all components, or K values
  std::vector<double> weights;     ///< empty: uniform
  uint64_t seed = 0;               ///< random-sphere means
};
/// gaussian: K = 1, mean radius*e_1 (radius 0 allowed);
/// two-point: means +-radius e_1;
/// random-sphere: K means uniform on the sphere of the given radius (from seed);
/// simplex: K <= d+1 equidistant means on the sphere of the given radius.
Mixture make_preset(const PresetParams& p, const ModelOptions& opt = {});
const std::vector<std::string>& preset_names();

/// log p(x) in double (log-sum-exp over components).
double log_density(const Mixture& m, const double* x);
/// Score of the forward marginal p_{X_t} at abar: s_t(x) (THEORY.md, Exact score), in double.
/// out: [d]. When weights_out is non-null it receives the posterior weights [K].
void exact_score(const Mixture& m, double abar, const double* x, double* out,
                 double* weights_out = nullptr);
/// The marginal law of X_t: means sqrt(abar) mu_k and variances abar C_k + (1 - abar) I.
Mixture forward_marginal(const Mixture& m, double abar);

}  // namespace gmmdiff
