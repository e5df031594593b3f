// gmmdiff (sweep): RunParams, a run's identity (canonical text and key) and label, and what it
// builds (include/gmmdiff/sweep.hpp, host/sweep/run_params.hpp).
#include "sweep/run_params.hpp"

#include <sstream>

#include "gmmdiff/error.hpp"
#include "io/text.hpp"

namespace gmmdiff {

using text::num;

std::string RunParams::canonical() const {
  std::ostringstream os;
  // A schedule file is keyed by its contents (schedule_hash); rows written before that carry no
  // hash and keep the key of their path, so that they still read back under their own key.
  const std::string sched_id =
      schedule_file.empty() ? "" : (schedule_hash.empty() ? text::hex16(text::fnv1a(schedule_file)) : schedule_hash);
  os << "family=" << family << ";preset=" << preset << ";model=" << model_hash << ";d=" << d << ";K=" << K
     << ";K_spec=" << K_spec << ";radius=" << num(radius) << ";sd=" << num(sd) << ";model_seed=" << model_seed
     << ";score_error=" << to_string(score_error) << ";eps=" << num(eps) << ";sampler=" << to_string(sampler)
     << ";variance=" << to_string(variance) << ";schedule=" << schedule << ";c0=" << num(c0) << ";c1=" << num(c1)
     << ";schedule_file=" << sched_id << ";T=" << T << ";stop=" << stop << ";precision=" << to_string(precision)
     << ";n=" << n << ";seed=" << seed << ";eps_samples=" << eps_samples << ";backend=" << backend
     << ";tv.stats=" << tv.stats << ";tv.bins=" << tv.bins << ";tv.bootstrap=" << tv.bootstrap
     << ";tv.reference_n=" << tv.reference_n;
  if (schedule_kind != "auto") os << ";schedule_kind=" << schedule_kind;  // "auto" keeps the keys of older rows
  if (bounds.on) os << ";bounds.M=" << bounds.M << ";bounds.n=" << bounds.n;  // off: the keys of older rows
  // Issue 11's parameters, only where they differ from what older rows did: their keys hold.
  if (sampler == SamplerKind::DDIMSong) os << ";eta=" << num(eta);
  if (error_profile != ErrorProfile::Uniform) os << ";error_profile=" << to_string(error_profile);
  if (score_error == ScoreErrorKind::Bias && bias_direction != "random") os << ";bias_direction=" << bias_direction;
  if (quantities) os << ";quantities=1";
  if (!tv_files_hash.empty()) os << ";tv.files=" << tv_files_hash;      // only sweeps with file: statistics
  return os.str();
}

std::string RunParams::key() const { return text::hex16(text::fnv1a(canonical())); }

std::string RunParams::label() const {
  std::ostringstream os;
  os << "T=" << T << " d=" << d << " K=" << K << " " << family << " sd=" << num(sd);
  if (preset != "gaussian" && preset != "two-point" && !preset.empty()) os << " r=" << num(radius);
  os << " " << to_string(sampler);
  if (sampler == SamplerKind::DDPM && variance != Variance::Beta) os << "/" << to_string(variance);
  if (sampler == SamplerKind::DDIMSong) os << "/eta=" << num(eta);
  if (schedule != "lcw") os << " " << schedule;
  if (score_error != ScoreErrorKind::None) {
    os << " " << to_string(score_error) << "=" << num(eps);
    if (error_profile != ErrorProfile::Uniform) os << "/" << to_string(error_profile);
    if (score_error == ScoreErrorKind::Bias && bias_direction != "random") os << "/along:" << bias_direction;
  }
  os << " n=" << n << " seed=" << seed;
  return os.str();
}

PresetParams preset_params(const RunParams& p) {
  PresetParams pp;
  pp.name = p.preset;
  pp.d = p.d;
  pp.K = p.K;
  pp.radius = p.radius;
  pp.sd = {p.sd};
  pp.seed = p.model_seed;
  return pp;
}

ScheduleParams schedule_params(const RunParams& p) {
  ScheduleParams sp;
  sp.name = p.schedule;
  sp.T = p.T;
  sp.c0 = p.c0;
  sp.c1 = p.c1;
  sp.file = p.schedule_file;
  sp.file_kind = p.schedule_kind;
  return sp;
}

ScoreError score_error_of(const RunParams& p) {
  ScoreError e(p.score_error, p.eps);
  e.profile = p.error_profile;
  e.direction_vector = parse_bias_direction(p.bias_direction, e.direction);
  return e;
}

SampleOptions sample_options_of(const RunParams& p) {
  SampleOptions opt;
  opt.n = p.n;
  opt.sampler = p.sampler;
  opt.variance = p.variance;
  opt.stop = p.stop;
  opt.seed = p.seed;
  opt.precision = p.precision;
  opt.score_error = score_error_of(p);
  opt.eta = p.eta;
  opt.eps_samples = p.eps_samples;
  return opt;
}

BoundsOptions bounds_options_of(const RunParams& p) {
  BoundsOptions bo;
  bo.n = p.bounds.n;
  bo.M = p.bounds.M;
  return bo;
}

Mixture build_target(const RunParams& p) {
  if (p.model) return *p.model;
  if (p.model_file.empty()) return make_preset(preset_params(p));
  Mixture m = load_model_json(p.model_file);
  if (!p.model_hash.empty() && hash_mixture(m) != p.model_hash)
    throw Error(p.model_file + ": the model changed since this run was planned (model hash " + p.model_hash +
                ", now " + hash_mixture(m) + ")");
  return m;
}

Schedule build_schedule(const RunParams& p) {
  if (p.schedule_loaded) return *p.schedule_loaded;
  Schedule s = make_schedule(schedule_params(p));
  if (!p.schedule_file.empty() && !p.schedule_hash.empty() && hash_schedule(s) != p.schedule_hash)
    throw Error(p.schedule_file + ": the schedule changed since this run was planned (schedule hash " +
                p.schedule_hash + ", now " + hash_schedule(s) + ")");
  return s;
}

std::string hash_mixture(const Mixture& m) {
  uint64_t h = text::fnv1a(&m.K, sizeof m.K);
  h = text::fnv1a(&m.d, sizeof m.d, h);
  auto vec = [&](const std::vector<double>& v) { h = text::fnv1a(v.data(), v.size() * sizeof(double), h); };
  vec(m.weights);
  vec(m.means);
  const int cov = m.cov == Covariance::Isotropic ? 0 : 1;
  h = text::fnv1a(&cov, sizeof cov, h);
  vec(m.sd);
  vec(m.var_diag);
  return text::hex16(h);
}

std::string hash_schedule(const Schedule& s) {
  uint64_t h = text::fnv1a(&s.T, sizeof s.T);
  h = text::fnv1a(s.alpha.data(), s.alpha.size() * sizeof(double), h);
  return text::hex16(h);
}

std::string hash_arrays(const std::vector<const NpyArray*>& arrays) {
  uint64_t h = text::kFnvOffset;
  for (const NpyArray* a : arrays) {
    const uint64_t dims = a->shape.size();
    h = text::fnv1a(&dims, sizeof dims, h);
    h = text::fnv1a(a->shape.data(), a->shape.size() * sizeof(uint64_t), h);
    h = text::fnv1a(a->data.data(), a->data.size() * sizeof(double), h);
  }
  return text::hex16(h);
}

}  // namespace gmmdiff
