// gmmdiff Python module: bracket(), TV(X_0, Y_s) from both sides (gmmdiff/bracket.hpp; docs/tv.md,
// "Upper bounds and exact densities"), as `gmmdiff bracket --json`: the same library call, so the
// same figures key for key and bit for bit, with the parameters under "parameters".
#include <climits>

#include "common.hpp"
#include "gmmdiff/bracket.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::python {

namespace {

py::dict bracket(py::object mixture, int64_t T, const std::string& sampler, py::object variance, int stop,
                 uint64_t seed, const std::string& score_error, double eps, double eta, const std::string& error_profile,
                 py::object error_factors, py::object bias_direction, int64_t n, py::object M, int64_t n_lower,
                 const std::string& precision, const std::string& backend, int threads, int64_t chunk,
                 const std::string& stats, int bins, int bootstrap, bool reference, const std::string& schedule,
                 double c0, double c1, py::object schedule_file, const std::string& schedule_kind, py::object info,
                 py::object progress) {
  // The CLI's order: the sampler's options, the model, the schedule, then the library's checks.
  SampleOptions opt;
  opt.sampler = parse_sampler(sampler);
  if (!variance.is_none() && !py::isinstance<py::str>(variance))
    throw py::type_error("variance must be a str (beta, posterior, inside) or None, not " +
                         std::string(py::str(py::type::handle_of(variance).attr("__name__"))));
  if (!M.is_none() && (!py::isinstance<py::int_>(M) || py::isinstance<py::bool_>(M)))
    throw py::type_error("M must be an int or None, not " + std::string(py::str(py::type::handle_of(M).attr("__name__"))));
  const std::string variance_name = variance.is_none() ? "beta" : variance.cast<std::string>();
  opt.variance = parse_variance(variance_name);
  opt.precision = parse_precision(precision);
  opt.score_error.kind = parse_score_error(score_error);
  opt.score_error.eps = eps;
  const std::string bias_text = score_error_from_args(opt.score_error, error_profile, error_factors, bias_direction);
  opt.eta = eta;
  opt.stop = stop;
  opt.seed = seed;
  check_bracket_sampler(opt, !M.is_none(), !variance.is_none());
  BoundsOptions bo;
  bo.n = as_count(n, "--n", "need >= 0; 0: the default");
  if (!M.is_none()) {
    const auto m = M.cast<int64_t>();
    GMMDIFF_EXPECTS(m >= INT_MIN && m <= INT_MAX, "--M = ", m, " (need 1 <= M <= 1048576)");
    bo.M = static_cast<int>(m);
  }
  bo.chunk = as_count(chunk, "--chunk", "need >= 0; 0: automatic");
  BracketOptions br;
  br.n_lower = as_count(n_lower, "--n-lower", "need at least one particle");
  br.backend = backend;
  br.threads = threads;
  br.tv.stats = stats;
  br.tv.bins = bins;
  br.tv.bootstrap = bootstrap;
  br.reference = reference;
  const std::shared_ptr<const Mixture> target = as_mixture(mixture);
  const Schedule sched = schedule_from_args(T, schedule, c0, c1, schedule_file, schedule_kind);
  if (!info.is_none() && !py::isinstance<py::dict>(info)) fill_info(info, py::dict());  // the TypeError, before work

  Interrupter interrupter(progress);
  // progress(done, total) per part: the upper bound or exact density first, then the lower bound's
  // sample; the end of each part is always reported (a short part may end within one interval).
  uint64_t last_done = 0, last_total = 0;
  br.progress = [&](const std::string&, uint64_t done, uint64_t total) {
    last_done = done;
    last_total = total;
    interrupter.check(done, total, done >= total);
  };
  Bracket b;
  std::string text;
  {
    py::gil_scoped_release nogil;
    b = bracket(*target, sched, opt, bo, br);
    if (last_total > 0 && last_done < last_total) interrupter.check(last_total, last_total, true);
    text = bracket_json(b);
  }
  py::dict j = json_loads(text).cast<py::dict>();
  py::dict p;
  p["model"] = py::isinstance<py::str>(mixture) || py::hasattr(mixture, "__fspath__") ? as_path(mixture, "mixture") : "";
  p["d"] = target->d;
  p["K"] = target->K;
  p["weights"] = target->weights;
  p["schedule"] = sched.name;
  p["T"] = sched.T;
  p["c0"] = c0;
  p["c1"] = c1;
  p["sampler"] = sampler;
  p["variance"] = opt.sampler == SamplerKind::DDPM ? py::object(py::str(variance_name)) : py::object(py::none());
  p["eta"] = opt.sampler == SamplerKind::DDIMSong ? py::object(py::float_(opt.eta)) : py::object(py::none());
  p["error_profile"] = std::string(to_string(opt.score_error.profile));
  p["bias_direction"] = bias_text;
  p["stop"] = opt.stop;
  p["seed"] = opt.seed;
  p["score_error"] = score_error;
  p["eps"] = opt.score_error.eps;
  p["n"] = b.upper ? b.upper->n : b.exact->n;
  p["n_lower"] = b.n_lower;
  p["precision_lower"] = precision;
  p["backend_lower"] = b.lower_run.backend;
  p["bounds_backend"] = b.bounds_backend;
  p["bounds_device"] = b.bounds_device;
  p["threads"] = threads;
  p["stats"] = stats;
  p["bins"] = bins;
  p["bootstrap"] = bootstrap;
  j["parameters"] = p;
  py::dict run;
  run["lower"] = b.lower_run.one_line();
  run["seconds"] = j["seconds"];
  run["eps_score"] = b.lower_run.eps_score;
  run["eps_jacobi"] = j["eps_jacobi"];
  fill_info(info, run);
  return j;
}

const char* kBracketDoc = R"doc(
TV(X_0, Y_s) of one configuration from both sides, as `gmmdiff bracket --json` (docs/tv.md, "Upper
bounds and exact densities"): the same figures, bit for bit, for the same parameters and seed.

  tv_lower (CI95 tv_lower_ci95)  a lower bound: the best bias-corrected projected TV of a fresh
                                 sample of n_lower particles (as gmmdiff.tv with `stats`);
  tv_upper                       ddpm, ddim-song with eta > 0: a one-sided 95% upper bound,
                                 U_TV(M) + 1.645 se (+ the TV(X_0, X_1) term for stop 1), from n
                                 outer draws of M continuations; kl_upper likewise for
                                 KL(X_s || Y_s);
  tv_exact (CI95 tv_exact_ci95)  ddim, ddim-song with eta = 0: TV through the exact output density
                                 of n particles;
  tv_reference                   reducible models (means on a line through the origin, one shared
                                 isotropic sd): TV by quadrature, without sampling noise;
  consistent, checks             lower <= exact <= upper at the figures' confidence bounds;
  eps_score, eps_jacobi          the score error's size, realised (eps_jacobi_se its standard
                                 error; None with eps_jacobi_defined False for gaussian).
None stands for a figure that does not apply. "meaning" says what each figure is;
"parameters" the options used.

mixture: a gmmdiff.Mixture, or the path of a model JSON file. The keyword arguments are the CLI's
options with their defaults: T, schedule, c0, c1, schedule_file, schedule_kind, sampler (ddpm:
upper bound by paths; ddim: exact density; ddim-song: exact density for eta 0, upper bound by paths
for eta > 0), eta (ddim-song's noise fraction in [0, 1]), variance (ddpm only; None: beta), stop,
seed, score_error, eps, error_profile (uniform, front-loaded, back-loaded, file), error_factors
(the T factors f(1..T) of eps: the path of a text file as the CLI's --error-factors, or a sequence
of numbers; implies error_profile 'file'), bias_direction (random, means, 'v1,...,vd' or a sequence
of d numbers), n (outer draws, stochastic samplers, 0: 4096; particles, deterministic ones, 0:
65536), M (continuations per outer draw, stochastic samplers only; None: 32), n_lower, precision
(of the lower bound's sample; the bounds are fp64), backend (of the bounds and of the lower
bound's sample: cpu, cuda, auto; the CUDA bounds give the CPU's figures to rounding, not bit for
bit), threads (0: all), chunk (of the bounds; never changes a figure), stats, bins, bootstrap (of
the lower bound, as gmmdiff.tv), reference (False: skip the exact reference, as --no-reference).
info: a dict that receives the lower bound's run summary line, seconds per part, eps_score and
eps_jacobi.
progress: a callable progress(done, total), per part (first the upper bound or exact density,
then the lower bound's sample). The GIL is released while it works; Ctrl-C raises
KeyboardInterrupt within about one step of a chunk. Errors: ValueError with the CLI's message.)doc";

}  // namespace

void init_bracket(py::module_& m) {
  m.def("bracket", &bracket, py::arg("mixture"), py::kw_only(), py::arg("T") = 1000, py::arg("sampler") = "ddpm",
        py::arg("variance") = py::none(), py::arg("stop") = 1, py::arg("seed") = 0, py::arg("score_error") = "none",
        py::arg("eps") = 0.0, py::arg("eta") = 0.0, py::arg("error_profile") = "uniform",
        py::arg("error_factors") = py::none(), py::arg("bias_direction") = "random", py::arg("n") = 0,
        py::arg("M") = py::none(), py::arg("n_lower") = kDefaultBracketLowerN,
        py::arg("precision") = "fp32", py::arg("backend") = "auto", py::arg("threads") = 0, py::arg("chunk") = 0,
        py::arg("stats") = "means,meansperp,random:8,radial,logp", py::arg("bins") = 0, py::arg("bootstrap") = 200,
        py::arg("reference") = true, py::arg("schedule") = "lcw", py::arg("c0") = 2.0, py::arg("c1") = 10.0,
        py::arg("schedule_file") = py::none(), py::arg("schedule_kind") = "auto", py::arg("info") = py::none(),
        py::arg("progress") = py::none(), kBracketDoc);
}

}  // namespace gmmdiff::python
