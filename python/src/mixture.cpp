// gmmdiff Python module: gmmdiff.Mixture, the target sum_k pi_k N(mu_k, C_k) (gmmdiff/model.hpp;
// THEORY.md, Target). Immutable from Python: its arrays are read-only views of the validated
// C++ object, which the sampler, TV and sweeps use as they are.
#include <climits>
#include <cmath>
#include <sstream>

#include "common.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"

namespace gmmdiff::python {

namespace {

std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << (shape.size() == 1 ? ",)" : ")");
  return os.str();
}

/// A read-only NumPy view of a vector the Mixture `self` owns (self stays alive as its base).
py::array view(const std::vector<double>& v, const std::vector<py::ssize_t>& shape, py::handle self) {
  py::array a(py::dtype::of<double>(), shape, {}, v.data(), self);
  a.attr("setflags")(py::arg("write") = false);
  return a;
}

int as_size(py::ssize_t v, const char* what) {
  GMMDIFF_EXPECTS(v >= 0 && v <= INT_MAX, "model: ", what, " = ", v, " does not fit (at most ", INT_MAX, ")");
  return static_cast<int>(v);
}

/// Builds and validates a mixture from NumPy arrays (or anything array-like).
std::shared_ptr<Mixture> from_arrays(py::handle means, py::handle weights, py::handle sd, py::handle var_diag,
                                     bool normalize_weights) {
  auto m = std::make_shared<Mixture>();
  std::vector<py::ssize_t> shape;
  m->means = to_doubles(means, "model: means", &shape);
  GMMDIFF_EXPECTS(shape.size() == 2, "model: means must be a (K, d) array, got shape ", shape_text(shape));
  m->K = as_size(shape[0], "K");
  m->d = as_size(shape[1], "d");
  if (weights.is_none()) {
    m->weights.assign(static_cast<std::size_t>(m->K), m->K > 0 ? 1.0 / m->K : 0.0);
  } else {
    m->weights = to_doubles(weights, "model: weights", &shape);
    GMMDIFF_EXPECTS(shape.size() == 1, "model: weights must be a 1-D array of K values, got shape ", shape_text(shape));
  }
  GMMDIFF_EXPECTS(sd.is_none() || var_diag.is_none(), "give at most one of 'sd', 'var_diag'");
  if (!var_diag.is_none()) {
    m->cov = Covariance::Diagonal;
    m->var_diag = to_doubles(var_diag, "model: var_diag", &shape);
    GMMDIFF_EXPECTS(shape.size() == 2 && shape[0] == m->K && shape[1] == m->d, "var_diag is ",
                    shape_text(shape), " but means is (", m->K, ", ", m->d, ")");
  } else {
    m->cov = Covariance::Isotropic;
    if (sd.is_none()) {
      m->sd.assign(static_cast<std::size_t>(m->K), 1.0);
    } else {
      m->sd = to_doubles(sd, "model: sd", &shape);
      GMMDIFF_EXPECTS(shape.size() <= 1, "model: sd must be one value or K values, got shape ", shape_text(shape));
      if (shape.empty()) m->sd.assign(static_cast<std::size_t>(m->K), m->sd.at(0));
    }
  }
  ModelOptions opt;
  opt.normalize_weights = normalize_weights;
  validate(*m, opt);
  return m;
}

/// Rows of x ((d,) or (n, d)) as doubles; n = 0 for a single point.
std::vector<double> points(py::handle x, int d, std::vector<py::ssize_t>& shape) {
  std::vector<double> v = to_doubles(x, "x", &shape);
  GMMDIFF_EXPECTS((shape.size() == 1 && shape[0] == d) || (shape.size() == 2 && shape[1] == d),
                  "x must be a point (", d, ",) or points (n, ", d, "), got shape ", shape_text(shape));
  return v;
}

void check_abar(double abar) {
  GMMDIFF_EXPECTS(std::isfinite(abar) && abar >= 0 && abar <= 1, "abar = ", abar, " (need 0 <= abar <= 1)");
}

py::dict state(const Mixture& m) {
  py::dict s;
  s["weights"] = py::cast(m.weights);
  s["means"] = py::array(py::dtype::of<double>(), {m.K, m.d}, {}, m.means.data());
  if (m.cov == Covariance::Diagonal)
    s["var_diag"] = py::array(py::dtype::of<double>(), {m.K, m.d}, {}, m.var_diag.data());
  else
    s["sd"] = py::cast(m.sd);
  return s;
}

}  // namespace

void init_mixture(py::module_& m) {
  py::class_<Mixture, std::shared_ptr<Mixture>> c(m, "Mixture", R"doc(
A Gaussian mixture sum_k pi_k N(mu_k, C_k) in R^d: the target X_0 of the sampler (THEORY.md,
Target). C_k = sd_k^2 I (isotropic) or diag(var_diag_k) (diagonal).

Build one from arrays, a preset family, or a model JSON file (docs/formats.md):

    Mixture(means, weights=None, sd=None, var_diag=None, *, normalize_weights=False)
    Mixture.preset("random-sphere", d=64, K=16, radius=3, seed=1)
    Mixture.from_json("model.json")

It is validated on construction (ValueError with the CLI's message on bad values) and immutable:
its arrays (weights, means, sd, var_diag) are read-only float64 views.)doc");
  c.def(py::init(&from_arrays), py::arg("means"), py::arg("weights") = py::none(), py::arg("sd") = py::none(),
        py::arg("var_diag") = py::none(), py::kw_only(), py::arg("normalize_weights") = false,
        R"doc(
A mixture from arrays. means: (K, d). weights: K positive values summing to 1 (None: uniform;
normalize_weights=True rescales any positive weights). sd: one value or K values (None: 1), or
var_diag: (K, d) positive variances; at most one of sd and var_diag. Any dtype of numbers, any
memory order; the values are copied.)doc");
  c.def_static(
      "preset",
      [](const std::string& name, int d, int K, double radius, py::object sd, py::object weights, uint64_t seed,
         bool normalize_weights) {
        PresetParams p;
        p.name = name;
        p.d = d;
        p.K = K;
        p.radius = radius;
        std::vector<py::ssize_t> shape;
        p.sd = to_doubles(sd, "--sd", &shape);
        GMMDIFF_EXPECTS(shape.size() <= 1, "--sd must be one value or K values");
        if (!weights.is_none()) p.weights = to_doubles(weights, "--weights", &shape);
        p.seed = seed;
        ModelOptions opt;
        opt.normalize_weights = normalize_weights;
        return std::make_shared<Mixture>(make_preset(p, opt));
      },
      py::arg("name"), py::kw_only(), py::arg("d") = 2, py::arg("K") = 0, py::arg("radius") = 2.0,
      py::arg("sd") = 1.0, py::arg("weights") = py::none(), py::arg("seed") = 0,
      py::arg("normalize_weights") = false, R"doc(
A built-in family, as the CLI's --preset NAME --d --K --radius --sd --weights --model-seed:
gaussian (K = 1, mean radius e_1), two-point (means +-radius e_1), random-sphere (K means uniform
on the sphere of that radius, drawn from seed), simplex (K <= d + 1 equidistant means). K = 0: the
family's default (gaussian 1, two-point 2, others d). sd: one value or K values.
Note: the CLI draws random-sphere means from --seed unless --model-seed is given; here the seed
is always this argument.)doc");
  c.def_static(
      "from_json",
      [](py::object path, bool normalize_weights) {
        const std::string p = as_path(path, "path");
        ModelOptions opt;
        opt.normalize_weights = normalize_weights;
        py::gil_scoped_release nogil;
        return std::make_shared<Mixture>(load_model_json(p, opt));
      },
      py::arg("path"), py::kw_only(), py::arg("normalize_weights") = false,
      "A mixture from a model JSON file (docs/formats.md), as --model FILE.");
  c.def(
      "to_json",
      [](const Mixture& self, py::object path) {
        const std::string p = as_path(path, "path");
        py::gil_scoped_release nogil;
        save_model_json(self, p);
      },
      py::arg("path"), "Writes the mixture as model JSON (atomically): the CLI's --model reads it back exactly.");
  c.def_property_readonly("K", [](const Mixture& self) { return self.K; }, "Number of components.");
  c.def_property_readonly("d", [](const Mixture& self) { return self.d; }, "Dimension.");
  c.def_property_readonly(
      "covariance", [](const Mixture& self) { return self.cov == Covariance::Diagonal ? "diagonal" : "isotropic"; },
      "'isotropic' (C_k = sd_k^2 I) or 'diagonal' (C_k = diag(var_diag_k)).");
  c.def_property_readonly(
      "weights", [](py::object self) { const auto& x = self.cast<const Mixture&>(); return view(x.weights, {x.K}, self); },
      "Weights pi_k, (K,) float64, read-only.");
  c.def_property_readonly(
      "means",
      [](py::object self) { const auto& x = self.cast<const Mixture&>(); return view(x.means, {x.K, x.d}, self); },
      "Means mu_k, (K, d) float64, read-only.");
  c.def_property_readonly(
      "sd",
      [](py::object self) -> py::object {
        const auto& x = self.cast<const Mixture&>();
        if (x.cov == Covariance::Diagonal) return py::none();
        return view(x.sd, {x.K}, self);
      },
      "Component standard deviations, (K,) float64, read-only; None for a diagonal mixture.");
  c.def_property_readonly(
      "var_diag",
      [](py::object self) -> py::object {
        const auto& x = self.cast<const Mixture&>();
        if (x.cov == Covariance::Isotropic) return py::none();
        return view(x.var_diag, {x.K, x.d}, self);
      },
      "Diagonal variances, (K, d) float64, read-only; None for an isotropic mixture.");
  c.def(
      "log_density",
      [](const Mixture& self, py::object x) -> py::object {
        std::vector<py::ssize_t> shape;
        const std::vector<double> v = points(x, self.d, shape);
        if (shape.size() == 1) return py::float_(log_density(self, v.data()));
        const py::ssize_t n = shape[0];
        py::array_t<double> out(n);
        double* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          for (py::ssize_t i = 0; i < n; ++i) o[i] = log_density(self, v.data() + i * static_cast<py::ssize_t>(self.d));
        }
        return std::move(out);
      },
      py::arg("x"), "log p(x) in float64 for a point (d,) (a float) or points (n, d) (an (n,) array).");
  c.def(
      "score",
      [](const Mixture& self, py::object x, double abar) {
        check_abar(abar);
        std::vector<py::ssize_t> shape;
        const std::vector<double> v = points(x, self.d, shape);
        py::array_t<double> out(shape);
        double* o = out.mutable_data();
        const py::ssize_t n = shape.size() == 1 ? 1 : shape[0];
        {
          py::gil_scoped_release nogil;
          for (py::ssize_t i = 0; i < n; ++i)
            exact_score(self, abar, v.data() + i * self.d, o + i * self.d);
        }
        return out;
      },
      py::arg("x"), py::arg("abar") = 1.0, R"doc(
The exact score s_t(x) = grad log p_t(x) of the forward marginal at abar (THEORY.md, Exact score;
abar = 1: the target's own score), float64, the shape of x ((d,) or (n, d)).)doc");
  c.def(
      "forward_marginal",
      [](const Mixture& self, double abar) {
        check_abar(abar);
        return std::make_shared<Mixture>(forward_marginal(self, abar));
      },
      py::arg("abar"), "The law of X_t at abar: means sqrt(abar) mu_k, variances abar C_k + (1 - abar) I.");
  c.def("__eq__", [](const Mixture& a, py::object other) {
    if (!py::isinstance<Mixture>(other)) return false;
    const Mixture& b = other.cast<const Mixture&>();
    return a.K == b.K && a.d == b.d && a.cov == b.cov && a.weights == b.weights && a.means == b.means &&
           a.sd == b.sd && a.var_diag == b.var_diag;
  });
  c.attr("__hash__") = py::none();
  c.def("__repr__", [](const Mixture& self) {
    std::ostringstream os;
    os.precision(6);
    os << "gmmdiff.Mixture(K=" << self.K << ", d=" << self.d << ", "
       << (self.cov == Covariance::Diagonal ? "diagonal" : "isotropic") << ", max |mu_k| = " << self.max_mean_norm()
       << ")";
    return os.str();
  });
  c.def(py::pickle([](const Mixture& self) { return state(self); },
                   [](const py::dict& s) {
                     const py::object none = py::none();
                     return from_arrays(s["means"], s["weights"], s.contains("sd") ? s["sd"] : none,
                                        s.contains("var_diag") ? s["var_diag"] : none, false);
                   }));
}

}  // namespace gmmdiff::python
