// gmmdiff Python module: exceptions, interrupts, arrays and conversions (common.hpp).
#include "common.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <utility>

#include "gmmdiff/error.hpp"

namespace gmmdiff::python {

namespace {

// The exception types, created once by register_errors and kept for the life of the process (the
// module holds references too; these are never released, so a translator can always use them).
PyObject* g_resource_error = nullptr;
PyObject* g_numerical_error = nullptr;

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

}  // namespace

void register_errors(py::module_& m) {
  g_resource_error = PyErr_NewExceptionWithDoc(
      "gmmdiff.ResourceError",
      "A size that does not fit in memory (host or device), even in chunks: gmmdiff::ResourceError,\n"
      "the CLI's exit code 3. A subclass of MemoryError.",
      PyExc_MemoryError, nullptr);
  g_numerical_error = PyErr_NewExceptionWithDoc(
      "gmmdiff.NumericalError",
      "The arithmetic failed on valid input (a particle turned NaN or Inf at a step the message\n"
      "names): gmmdiff::NumericalError. A subclass of ArithmeticError.",
      PyExc_ArithmeticError, nullptr);
  if (g_resource_error == nullptr || g_numerical_error == nullptr) throw py::error_already_set();
  m.attr("ResourceError") = py::handle(g_resource_error);
  m.attr("NumericalError") = py::handle(g_numerical_error);
  // Tried before pybind11's own translators (which would make every gmmdiff::Error, a
  // std::runtime_error, a RuntimeError). Anything else propagates to them (std::bad_alloc:
  // MemoryError). The most derived class first.
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const NumericalError& e) {
      PyErr_SetString(g_numerical_error, e.what());
    } catch (const ResourceError& e) {
      PyErr_SetString(g_resource_error, e.what());
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}

// ---- interrupts ----

Interrupter::Interrupter(py::object progress)
    : progress_(std::move(progress)),
      next_(std::chrono::steady_clock::now() +
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::duration<double>(kCheckIntervalSeconds))) {
  if (!progress_.is_none() && !PyCallable_Check(progress_.ptr()))
    throw py::type_error("progress must be a callable progress(done, total) or None, not " + type_name(progress_));
}

std::function<void(uint64_t, uint64_t)> Interrupter::callback() {
  return [this](uint64_t done, uint64_t total) { check(done, total); };
}

void Interrupter::check(uint64_t done, uint64_t total, bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now < next_) return;
  next_ = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(kCheckIntervalSeconds));
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  if (!progress_.is_none()) progress_(done, total);
}

void Interrupter::check_signals() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// ---- arrays ----

py::array owned_array(std::shared_ptr<ResultMemory> owner, bool fp64, const std::vector<py::ssize_t>& shape) {
  GMMDIFF_EXPECTS(owner && owner->kind() == MemoryKind::Host, "a NumPy array needs host memory");
  const py::ssize_t item = fp64 ? 8 : 4;
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t s = item;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  void* data = owner->data();
  auto holder = std::make_unique<std::shared_ptr<ResultMemory>>(std::move(owner));
  py::capsule base(holder.get(), [](void* p) { delete static_cast<std::shared_ptr<ResultMemory>*>(p); });
  holder.release();  // the capsule owns it now
  return py::array(fp64 ? py::dtype::of<double>() : py::dtype::of<float>(), shape, strides, data, base);
}

std::vector<double> to_doubles(py::handle obj, const std::string& what, std::vector<py::ssize_t>* shape) {
  py::array a = py::array::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw Error(what + " must be an array of numbers, not " + type_name(obj));
  }
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u')
    throw Error(what + " must be an array of numbers (got dtype " + py::str(static_cast<py::handle>(a.dtype())).cast<std::string>() + ")");
  auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!d) throw py::error_already_set();
  if (shape) shape->assign(d.shape(), d.shape() + d.ndim());
  return std::vector<double>(d.data(), d.data() + d.size());
}

// ---- values ----

std::shared_ptr<const Mixture> as_mixture(py::handle obj) {
  if (py::isinstance<Mixture>(obj)) return obj.cast<std::shared_ptr<Mixture>>();
  if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__")) {
    const std::string path = as_path(obj, "mixture");
    std::shared_ptr<Mixture> m;
    {
      py::gil_scoped_release nogil;
      m = std::make_shared<Mixture>(load_model_json(path));
    }
    return m;
  }
  throw py::type_error("mixture must be a gmmdiff.Mixture or the path of a model JSON file, not " + type_name(obj));
}

std::string as_path(py::handle obj, const std::string& what, bool allow_none) {
  if (allow_none && obj.is_none()) return "";
  if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__")) {
    py::object s = py::module_::import("os").attr("fsdecode")(obj);
    return s.cast<std::string>();
  }
  throw py::type_error(what + " must be a path (str or os.PathLike)" + (allow_none ? " or None" : "") + ", not " +
                       type_name(obj));
}

Schedule schedule_from_args(int64_t T, const std::string& schedule, double c0, double c1, py::handle schedule_file,
                            const std::string& schedule_kind, const std::string& name_arg,
                            const std::string& file_arg) {
  ScheduleParams sp;
  sp.name = schedule;
  GMMDIFF_EXPECTS(T >= 1 && T <= kMaxSteps, "--T = ", T, " (need 1 <= T <= ", kMaxSteps, ")");
  sp.T = static_cast<int>(T);
  sp.c0 = c0;
  sp.c1 = c1;
  sp.file = as_path(schedule_file, file_arg, true);
  GMMDIFF_EXPECTS(sp.file.empty() || schedule == "file", file_arg, " is given but ", name_arg, " is '", schedule,
                  "' (use ", name_arg, "='file')");
  sp.file_kind = schedule_kind;
  py::gil_scoped_release nogil;
  return make_schedule(sp);
}

namespace {

/// A 1-D sequence of numbers (not a str), or a TypeError naming what it should have been.
std::vector<double> number_sequence(py::handle obj, const std::string& what, const std::string& allowed) {
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj) ||
      !(py::isinstance<py::sequence>(obj) || py::isinstance<py::array>(obj)))
    throw py::type_error(what + " must be " + allowed + ", not " + type_name(obj));
  std::vector<py::ssize_t> shape;
  std::vector<double> v = to_doubles(obj, what, &shape);
  GMMDIFF_EXPECTS(shape.size() == 1, what, " must be a 1-D sequence of numbers (got ", shape.size(), " dimensions)");
  return v;
}

}  // namespace

std::string score_error_from_args(ScoreError& err, const std::string& error_profile, py::handle error_factors,
                                  py::handle bias_direction) {
  err.profile = parse_error_profile(error_profile);
  if (!error_factors.is_none()) {
    GMMDIFF_EXPECTS(error_profile == "uniform" || error_profile == "file",
                    "--error-factors goes with --error-profile file, not ", error_profile);
    err.profile = ErrorProfile::File;
    if (py::isinstance<py::str>(error_factors) || py::hasattr(error_factors, "__fspath__")) {
      const std::string path = as_path(error_factors, "error_factors");
      py::gil_scoped_release nogil;
      err.factors = load_error_factors(path);
    } else {
      err.factors = number_sequence(error_factors, "error_factors",
                                    "the path of a factors file, a sequence of T numbers or None");
    }
  }
  GMMDIFF_EXPECTS(err.profile != ErrorProfile::File || !error_factors.is_none(),
                  "--error-profile file needs --error-factors FILE");
  if (py::isinstance<py::str>(bias_direction)) {
    const std::string text = bias_direction.cast<std::string>();
    err.direction_vector = parse_bias_direction(text, err.direction);
    return text;
  }
  err.direction_vector =
      number_sequence(bias_direction, "bias_direction", "'random', 'means', 'v1,...,vd' or a sequence of d numbers");
  err.direction = BiasDirection::Vector;
  GMMDIFF_EXPECTS(!err.direction_vector.empty(),
                  "--bias-direction: empty (allowed: random, means, or d comma-separated numbers)");
  std::string text;
  for (double x : err.direction_vector) {
    const std::string tok = py::repr(py::float_(x)).cast<std::string>();
    GMMDIFF_EXPECTS(std::isfinite(x), "--bias-direction: '", tok,
                    "' is not a finite number (allowed: random, means, or d comma-separated numbers)");
    if (!text.empty()) text += ",";
    text += tok;
  }
  return text;
}

uint64_t as_count(int64_t v, const char* what, const char* why) {
  if (v < 0) throw Error(detail::cat(what, " = ", v, " (", why, ")"));
  return static_cast<uint64_t>(v);
}

py::object json_loads(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

std::string json_dumps(py::handle obj) {
  return py::module_::import("json").attr("dumps")(obj, py::arg("allow_nan") = false).cast<std::string>();
}

void fill_info(py::handle info, const py::dict& values) {
  if (info.is_none()) return;
  if (!py::isinstance<py::dict>(info))
    throw py::type_error("info must be a dict (it receives the run summary) or None, not " + type_name(info));
  for (auto item : values) info[item.first] = item.second;
}

}  // namespace gmmdiff::python
