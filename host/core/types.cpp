// gmmdiff: parsers and names of the shared enums.
#include "gmmdiff/types.hpp"

#include "gmmdiff/error.hpp"

namespace gmmdiff {

Precision parse_precision(const std::string& s) {
  if (s == "fp32" || s == "float32") return Precision::FP32;
  if (s == "fp64" || s == "float64") return Precision::FP64;
  throw Error("unknown precision '" + s + "' (allowed: fp32, fp64)");
}
SamplerKind parse_sampler(const std::string& s) {
  if (s == "ddpm") return SamplerKind::DDPM;
  if (s == "ddim") return SamplerKind::DDIM;
  if (s == "ddim-song") return SamplerKind::DDIMSong;
  throw Error("unknown sampler '" + s + "' (allowed: ddpm, ddim, ddim-song)");
}
Variance parse_variance(const std::string& s) {
  if (s == "beta") return Variance::Beta;
  if (s == "posterior") return Variance::Posterior;
  if (s == "inside") return Variance::Inside;
  throw Error("unknown variance '" + s + "' (allowed: beta, posterior, inside)");
}
ScoreErrorKind parse_score_error(const std::string& s) {
  if (s == "none") return ScoreErrorKind::None;
  if (s == "bias") return ScoreErrorKind::Bias;
  if (s == "scale") return ScoreErrorKind::Scale;
  if (s == "weights") return ScoreErrorKind::Weights;
  if (s == "means") return ScoreErrorKind::Means;
  if (s == "gaussian") return ScoreErrorKind::Gaussian;
  throw Error("unknown score error '" + s + "' (allowed: none, bias, scale, weights, means, gaussian)");
}
ErrorProfile parse_error_profile(const std::string& s) {
  if (s == "uniform") return ErrorProfile::Uniform;
  if (s == "front-loaded") return ErrorProfile::FrontLoaded;
  if (s == "back-loaded") return ErrorProfile::BackLoaded;
  if (s == "file") return ErrorProfile::File;
  throw Error("unknown score-error profile '" + s + "' (allowed: uniform, front-loaded, back-loaded, file)");
}
const char* to_string(Precision p) { return p == Precision::FP32 ? "fp32" : "fp64"; }
const char* to_string(SamplerKind s) {
  switch (s) {
    case SamplerKind::DDPM: return "ddpm";
    case SamplerKind::DDIM: return "ddim";
    default: return "ddim-song";
  }
}
const char* to_string(ErrorProfile p) {
  switch (p) {
    case ErrorProfile::Uniform: return "uniform";
    case ErrorProfile::FrontLoaded: return "front-loaded";
    case ErrorProfile::BackLoaded: return "back-loaded";
    default: return "file";
  }
}
const char* to_string(BiasDirection b) {
  switch (b) {
    case BiasDirection::Random: return "random";
    case BiasDirection::Means: return "means";
    default: return "vector";
  }
}
const char* to_string(Variance v) {
  switch (v) {
    case Variance::Beta: return "beta";
    case Variance::Posterior: return "posterior";
    default: return "inside";
  }
}
const char* to_string(ScoreErrorKind k) {
  switch (k) {
    case ScoreErrorKind::None: return "none";
    case ScoreErrorKind::Bias: return "bias";
    case ScoreErrorKind::Scale: return "scale";
    case ScoreErrorKind::Weights: return "weights";
    case ScoreErrorKind::Means: return "means";
    default: return "gaussian";
  }
}

}  // namespace gmmdiff
