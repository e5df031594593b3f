// gmmdiff (sweep): RunParams, a run's identity (canonical text and key) and label, and what it
// builds (include/gmmdiff/sweep.hpp, host/sweep/run_params.hpp).
#include "sweep/run_params.hpp"

#include <sstream>

#include "io/text.hpp"

namespace gmmdiff {

using text::num;

std::string RunParams::canonical() const {
  std::ostringstream os;
  os << "family=" << family << ";preset=" << preset << ";model=" << model_hash << ";d=" << d << ";K=" << K
     << ";K_spec=" << K_spec << ";radius=" << num(radius) << ";sd=" << num(sd) << ";model_seed=" << model_seed
     << ";score_error=" << to_string(score_error) << ";eps=" << num(eps) << ";sampler=" << to_string(sampler)
     << ";variance=" << to_string(variance) << ";schedule=" << schedule << ";c0=" << num(c0) << ";c1=" << num(c1)
     << ";schedule_file=" << (schedule_file.empty() ? "" : text::hex16(text::fnv1a(schedule_file))) << ";T=" << T
     << ";stop=" << stop << ";precision=" << to_string(precision) << ";n=" << n << ";seed=" << seed
     << ";eps_samples=" << eps_samples << ";backend=" << backend << ";tv.stats=" << tv.stats << ";tv.bins=" << tv.bins
     << ";tv.bootstrap=" << tv.bootstrap << ";tv.reference_n=" << tv.reference_n;
  if (schedule_kind != "auto") os << ";schedule_kind=" << schedule_kind;  // "auto" keeps the keys of older rows
  if (bounds.on) os << ";bounds.M=" << bounds.M << ";bounds.n=" << bounds.n;  // off: the keys of older rows
  // Issue 11's parameters, only where they differ from what older rows did: their keys hold.
  if (sampler == SamplerKind::DDIMSong) os << ";eta=" << num(eta);
  if (error_profile != ErrorProfile::Uniform) os << ";error_profile=" << to_string(error_profile);
  if (score_error == ScoreErrorKind::Bias && bias_direction != "random") os << ";bias_direction=" << bias_direction;
  if (quantities) os << ";quantities=1";
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

SampleOptions sample_options_of(const RunParams& p) {
  SampleOptions opt;
  opt.n = p.n;
  opt.sampler = p.sampler;
  opt.variance = p.variance;
  opt.stop = p.stop;
  opt.seed = p.seed;
  opt.precision = p.precision;
  opt.score_error.kind = p.score_error;
  opt.score_error.eps = p.eps;
  opt.score_error.profile = p.error_profile;
  opt.score_error.direction_vector = parse_bias_direction(p.bias_direction, opt.score_error.direction);
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
  if (!p.model_file.empty()) return load_model_json(p.model_file);
  return make_preset(preset_params(p));
}

}  // namespace gmmdiff
