// gmmdiff: small enums shared by the whole API, with their parsers and names.
#pragma once
#include <cstdint>
#include <string>

namespace gmmdiff {

enum class Precision { FP32, FP64 };
enum class SamplerKind { DDPM, DDIM };
/// sigma_t^2 of the DDPM sampler (THEORY.md, Samplers).
enum class Variance { Beta, Posterior, Inside };
/// Kinds of injected score error (THEORY.md, Score error).
enum class ScoreErrorKind { None, Bias, Scale, Weights, Means, Gaussian };

Precision parse_precision(const std::string& s);        // "fp32" | "fp64"
SamplerKind parse_sampler(const std::string& s);        // "ddpm" | "ddim"
Variance parse_variance(const std::string& s);          // "beta" | "posterior" | "inside"
ScoreErrorKind parse_score_error(const std::string& s); // "none" | "bias" | "scale" | "weights" | "means" | "gaussian"

const char* to_string(Precision p);
const char* to_string(SamplerKind s);
const char* to_string(Variance v);
const char* to_string(ScoreErrorKind k);

inline std::size_t bytes_of(Precision p) { return p == Precision::FP32 ? 4 : 8; }

}  // namespace gmmdiff
