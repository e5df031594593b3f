// gmmdiff: noise schedules (THEORY.md, Schedules), all in double. Where a family's formula leaves
// (0, 1] for small T, the clipping rule is documented here and in docs/cli.md.
#include "gmmdiff/schedule.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "io/input.hpp"

namespace gmmdiff {

namespace {

constexpr double kMaxBeta = 0.999;  // beta clip of Nichol & Dhariwal, used by every beta family
constexpr double kPi = 3.14159265358979323846;

// Fills abar and one_minus_abar from alpha (1 - abar by expm1 of the summed log alpha, so that
// 1 - abar_t keeps its digits when abar_t is within 1e-16 of 1).
// log_alpha[t] = log(alpha_t), given directly (log1p(-beta)) where the family defines beta.
void finish_from_log_alpha(Schedule& s, const std::vector<double>& log_alpha) {
  s.abar.assign(s.T + 1, 1.0);
  s.one_minus_abar.assign(s.T + 1, 0.0);
  double log_abar = 0;
  for (int t = 1; t <= s.T; ++t) {
    log_abar += log_alpha[t];
    s.abar[t] = std::exp(log_abar);
    s.one_minus_abar[t] = -std::expm1(log_abar);
  }
}

Schedule from_betas(const std::string& name, const std::vector<double>& beta) {
  Schedule s;
  s.name = name;
  s.T = static_cast<int>(beta.size()) - 1;
  s.alpha.assign(s.T + 1, 1.0);
  std::vector<double> log_alpha(s.T + 1, 0.0);
  for (int t = 1; t <= s.T; ++t) {
    const double b = std::min(beta[t], kMaxBeta);
    s.alpha[t] = 1.0 - b;
    log_alpha[t] = std::log1p(-b);
  }
  finish_from_log_alpha(s, log_alpha);
  return s;
}

Schedule lcw(int T, double c0, double c1) {
  // arXiv 2504.05300 eq. (14). With c = c1 log T / T: abar_{t-1} = abar_t (1 + c (1 - abar_t)),
  // i.e. 1 - abar_{t-1} = (1 - abar_t)(1 - c abar_t), computed in this form to keep 1 - abar exact.
  // For small T (c abar_t >= 1) the recursion would leave (0, 1]; the factor is clipped at 0, so
  // abar reaches 1 early and the remaining steps are identities (alpha = 1).
  Schedule s;
  s.name = "lcw";
  s.T = T;
  s.abar.assign(T + 1, 1.0);
  s.one_minus_abar.assign(T + 1, 0.0);
  const double c = c1 * std::log(static_cast<double>(T)) / T;
  s.abar[T] = std::pow(static_cast<double>(T), -c0);
  s.one_minus_abar[T] = -std::expm1(-c0 * std::log(static_cast<double>(T)));
  for (int t = T; t >= 2; --t) {
    const double f = 1.0 - c * s.abar[t];
    if (f <= 0) {  // clipped: abar reaches 1
      s.one_minus_abar[t - 1] = 0.0;
      s.abar[t - 1] = 1.0;
      continue;
    }
    s.one_minus_abar[t - 1] = s.one_minus_abar[t] * f;
    // Near 1 the additive form stalls in rounding; 1 - (1 - abar) is then the accurate one.
    s.abar[t - 1] = s.one_minus_abar[t - 1] < 0.5 ? 1.0 - s.one_minus_abar[t - 1]
                                                  : s.abar[t] + c * s.abar[t] * s.one_minus_abar[t];
  }
  s.alpha.assign(T + 1, 1.0);
  for (int t = 1; t <= T; ++t) s.alpha[t] = s.abar[t] / s.abar[t - 1];
  return s;
}

Schedule li_yan(int T, double c0, double c1) {
  // arXiv 2409.18959 eq. (2.3): beta_1 = T^-c0, beta_{t+1} = (c1 log T / T) min{beta_1 (1 + c1 log T / T)^t, 1}.
  std::vector<double> beta(T + 1, 0.0);
  const double c = c1 * std::log(static_cast<double>(T)) / T;
  beta[1] = std::pow(static_cast<double>(T), -c0);
  for (int t = 1; t < T; ++t)
    beta[t + 1] = c * std::min(beta[1] * std::pow(1.0 + c, t), 1.0);
  return from_betas("li-yan", beta);
}

Schedule linear(int T) {
  // Ho et al. 2020, beta from 1e-4 to 0.02 over 1000 steps, scaled by 1000/T (Nichol & Dhariwal).
  std::vector<double> beta(T + 1, 0.0);
  const double scale = 1000.0 / T, b0 = scale * 1e-4, b1 = scale * 0.02;
  for (int t = 1; t <= T; ++t) beta[t] = T == 1 ? b0 : b0 + (b1 - b0) * (t - 1) / (T - 1);
  return from_betas("linear", beta);
}

Schedule cosine(int T) {
  // Nichol & Dhariwal 2021: abar(t) = f(t) / f(0), f(t) = cos^2(((t/T) + s) / (1 + s) pi/2), s = 0.008.
  const double s = 0.008;
  auto f = [&](double t) {
    const double c = std::cos((t / T + s) / (1 + s) * kPi / 2);
    return c * c;
  };
  std::vector<double> beta(T + 1, 0.0);
  for (int t = 1; t <= T; ++t) beta[t] = 1.0 - f(t) / f(t - 1);
  return from_betas("cosine", beta);
}

std::vector<double> read_values(const ScheduleParams& p, std::string& kind) {
  const std::string& path = p.file;
  GMMDIFF_EXPECTS(!path.empty(), "--schedule file needs --schedule-file PATH");
  kind = p.file_kind;
  if (path.size() > 4 && path.substr(path.size() - 4) == ".npy") {
    NpyArray a = read_npy(path);
    GMMDIFF_EXPECTS(a.shape.size() == 1, path, ": a schedule .npy must be 1-D, has ", a.shape.size(),
                    " dimensions");
    GMMDIFF_EXPECTS(kind != "auto", path, ": say whether the values are alpha_t or abar_t (--schedule-kind alpha|abar)");
    return a.data;
  }
  const std::string text = read_input_file(path, "schedule file");
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    const nlohmann::json j = parse_json(text, path);
    GMMDIFF_EXPECTS(j.size() == 1 && (j.contains("alpha") || j.contains("abar")), path,
                    ": a schedule JSON holds exactly one key, 'alpha' or 'abar'");
    const std::string key = j.contains("alpha") ? "alpha" : "abar";
    GMMDIFF_EXPECTS(kind == "auto" || kind == key, path, ": --schedule-kind ", kind, " but the file's key is '", key,
                    "' (the key says what the values are: drop --schedule-kind)");
    kind = key;
    GMMDIFF_EXPECTS(j[kind].is_array(), path, ": '", kind, "' must be an array of numbers");
    GMMDIFF_EXPECTS(j[kind].size() <= static_cast<std::size_t>(kMaxSteps), path, ": ", j[kind].size(),
                    " values (at most ", kMaxSteps, ")");
    std::vector<double> v;
    for (const auto& x : j[kind]) {
      GMMDIFF_EXPECTS(x.is_number(), path, ": '", kind, "' must be an array of numbers");
      v.push_back(x.get<double>());
    }
    return v;
  }
  GMMDIFF_EXPECTS(kind != "auto", path, ": say whether the values are alpha_t or abar_t (--schedule-kind alpha|abar)");
  std::vector<double> v;
  std::istringstream is(text);
  std::string tok;
  while (is >> tok) {
    char* end = nullptr;
    const double x = std::strtod(tok.c_str(), &end);
    GMMDIFF_EXPECTS(end && *end == '\0', path, ": '", tok, "' is not a number");
    GMMDIFF_EXPECTS(v.size() < static_cast<std::size_t>(kMaxSteps), path, ": more than ", kMaxSteps, " values");
    v.push_back(x);
  }
  return v;
}

Schedule from_file(const ScheduleParams& p) {
  std::string kind;
  std::vector<double> v = read_values(p, kind);
  GMMDIFF_EXPECTS(!v.empty(), p.file, ": the schedule is empty (need T >= 1 values)");
  GMMDIFF_EXPECTS(v.size() <= static_cast<std::size_t>(kMaxSteps), p.file, ": ", v.size(), " values (at most ", kMaxSteps, ")");
  GMMDIFF_EXPECTS(kind == "alpha" || kind == "abar", "--schedule-kind must be alpha or abar, not '", kind, "'");
  for (std::size_t i = 0; i < v.size(); ++i)
    GMMDIFF_EXPECTS(std::isfinite(v[i]) && v[i] > 0 && v[i] <= 1, p.file, ": ", kind, "[", i + 1,
                    "] = ", v[i], " (must lie in (0, 1])");
  Schedule s;
  s.name = "file";
  s.T = static_cast<int>(v.size());
  s.alpha.assign(s.T + 1, 1.0);
  std::vector<double> log_alpha(s.T + 1, 0.0);
  if (kind == "alpha") {
    for (int t = 1; t <= s.T; ++t) s.alpha[t] = v[t - 1];
  } else {
    for (int t = 1; t <= s.T; ++t) {
      const double prev = t == 1 ? 1.0 : v[t - 2];
      GMMDIFF_EXPECTS(v[t - 1] <= prev, p.file, ": abar[", t, "] = ", v[t - 1], " exceeds abar[", t - 1,
                      "] = ", prev, " (abar must be non-increasing)");
      s.alpha[t] = v[t - 1] / prev;
    }
  }
  for (int t = 1; t <= s.T; ++t) log_alpha[t] = std::log(s.alpha[t]);
  finish_from_log_alpha(s, log_alpha);
  return s;
}

}  // namespace

const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> n = {"lcw", "li-yan", "linear", "cosine", "file"};
  return n;
}

double one_minus_alpha(const Schedule& s, int t) {
  GMMDIFF_EXPECTS(t >= 1 && t <= s.T, "step ", t, " outside 1..", s.T);
  if (s.abar[t - 1] >= 0.5) return (s.one_minus_abar[t] - s.one_minus_abar[t - 1]) / s.abar[t - 1];
  return (s.abar[t - 1] - s.abar[t]) / s.abar[t - 1];
}

Schedule make_schedule(const ScheduleParams& p) {
  Schedule s;
  if (p.name == "file") {
    s = from_file(p);
  } else {
    GMMDIFF_EXPECTS(p.T >= 1 && p.T <= kMaxSteps, "--T = ", p.T, " (need 1 <= T <= ", kMaxSteps, ")");
    GMMDIFF_EXPECTS(std::isfinite(p.c0) && p.c0 > 0, "--c0 = ", p.c0, " (need c0 > 0)");
    GMMDIFF_EXPECTS(std::isfinite(p.c1) && p.c1 > 0, "--c1 = ", p.c1, " (need c1 > 0)");
    if (p.name == "lcw") s = lcw(p.T, p.c0, p.c1);
    else if (p.name == "li-yan") s = li_yan(p.T, p.c0, p.c1);
    else if (p.name == "linear") s = linear(p.T);
    else if (p.name == "cosine") s = cosine(p.T);
    else throw Error("unknown schedule '" + p.name + "' (allowed: lcw, li-yan, linear, cosine, file)");
  }
  // abar_t = prod alpha_i below the smallest normal double is 0 (or denormal) in every formula that
  // follows: say so, rather than report the alpha_t = abar_t / abar_{t-1} = 0 it produces.
  for (int t = 1; t <= s.T; ++t) {
    if (s.abar[t] >= std::numeric_limits<double>::min()) continue;
    if (p.name == "lcw")
      throw Error(detail::cat("schedule lcw: abar_T = T^-c0 = ", p.T, "^-", p.c0, " = e^-",
                              p.c0 * std::log(double(p.T)), " underflows a double (below 2.2e-308): need c0 ln T < 708, i.e. c0 < ",
                              708.0 / std::log(double(p.T)), " at T = ", p.T));
    throw Error(detail::cat(p.name == "file" ? p.file : "schedule " + s.name, ": abar_", t, " = alpha_1 x ... x alpha_",
                            t, " = ", s.abar[t], " underflows a double (below 2.2e-308); the noise is complete long "
                            "before: use larger alphas"));
  }
  for (int t = 1; t <= s.T; ++t) {
    GMMDIFF_EXPECTS(std::isfinite(s.alpha[t]) && s.alpha[t] > 0 && s.alpha[t] <= 1, "schedule ", s.name,
                    ": alpha[", t, "] = ", s.alpha[t], " is outside (0, 1]");
    GMMDIFF_EXPECTS(s.abar[t] > 0 && s.abar[t] <= s.abar[t - 1], "schedule ", s.name, ": abar[", t,
                    "] = ", s.abar[t], " is not in (0, abar[t-1]]");
  }
  return s;
}

}  // namespace gmmdiff
