// gmmdiff: small enums shared by the whole API, with their parsers and names.
#pragma once
#include <cstdint>
#include <string>

namespace gmmdiff {

enum class Precision { FP32, FP64 };
/// DDPM: arXiv 2504.05300 eq. (9). DDIM: the seeds' theory's Euler discretisation of the probability-flow
/// ODE (arXiv 2409.18959 eq. (2.5)). DDIMSong: "ddim-song", Song, Meng and Ermon 2021's DDIM in the
/// exponential-integrator form common libraries' DDIM schedulers compute, with eta in [0, 1]
/// (THEORY.md, Samplers; docs/cli.md says how the two DDIMs differ).
enum class SamplerKind { DDPM, DDIM, DDIMSong };
/// sigma_t^2 of the DDPM sampler (THEORY.md, Samplers).
enum class Variance { Beta, Posterior, Inside };
/// Kinds of injected score error (THEORY.md, Score error).
enum class ScoreErrorKind { None, Bias, Scale, Weights, Means, Gaussian };
/// Where over t the injected score error sits (THEORY.md, Score error): eps times a factor f(t).
enum class ErrorProfile { Uniform, FrontLoaded, BackLoaded, File };
/// The direction of the `bias` score error: a random unit vector (from the seed), the principal
/// direction of the means, or a vector the user gives.
enum class BiasDirection { Random, Means, Vector };

Precision parse_precision(const std::string& s);        // "fp32" | "fp64"
SamplerKind parse_sampler(const std::string& s);        // "ddpm" | "ddim" | "ddim-song"
Variance parse_variance(const std::string& s);          // "beta" | "posterior" | "inside"
ScoreErrorKind parse_score_error(const std::string& s); // "none" | "bias" | "scale" | "weights" | "means" | "gaussian"
ErrorProfile parse_error_profile(const std::string& s); // "uniform" | "front-loaded" | "back-loaded" | "file"

const char* to_string(Precision p);
const char* to_string(SamplerKind s);
const char* to_string(Variance v);
const char* to_string(ScoreErrorKind k);
const char* to_string(ErrorProfile p);
const char* to_string(BiasDirection b);  // "random" | "means" | "vector"

inline std::size_t bytes_of(Precision p) { return p == Precision::FP32 ? 4 : 8; }

}  // namespace gmmdiff
