// gmmdiff Python module: what every binding file shares. The exceptions and their translation,
// the interrupt check that runs while the GIL is released, arrays handed to NumPy without a copy,
// and conversions of Python values with the CLI's messages (docs/python.md).
//
// One binding file per part of the library (mixture.cpp, sample.cpp, tv.cpp, sweep.cpp), each with
// an init_<part>(module) called by module.cpp (bracket.cpp: gmmdiff/bracket.hpp). A new part is
// a new file of the same shape: parse the keyword arguments, release the GIL, run the library
// with an Interrupter as its progress callback, return a dict or an array.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"

namespace gmmdiff::python {

namespace py = pybind11;

// ---- exceptions (docs/python.md, "Errors") ----
// gmmdiff::Error -> ValueError; gmmdiff::ResourceError -> gmmdiff.ResourceError (a MemoryError);
// gmmdiff::NumericalError -> gmmdiff.NumericalError (an ArithmeticError). The message is the
// library's one line, as the CLI prints it after "gmmdiff: error: ".
void register_errors(py::module_& m);

// ---- interrupts ----

/// Seconds between two looks at pending signals (and calls of a user's progress callable) while
/// long work runs without the GIL: Ctrl-C is seen within this time plus one step of a chunk.
constexpr double kCheckIntervalSeconds = 0.1;

/// The progress callback of a long call made with the GIL released (SampleOptions::progress,
/// SweepCallbacks::on_progress, a TV chunk source). At most every kCheckIntervalSeconds it takes
/// the GIL back, runs Python's signal handlers (PyErr_CheckSignals: Ctrl-C raises
/// KeyboardInterrupt there) and calls the user's progress(done, total) if one was given; an
/// exception from either is thrown on as py::error_already_set, which unwinds the library call
/// (its outputs are removed by their owners as for any error) and reaches Python unchanged.
/// Call only from the thread that released the GIL (Python handles signals in the main thread).
class Interrupter {
 public:
  explicit Interrupter(py::object progress = py::none());
  /// A callback for the library; it refers to this object, which must outlive the call.
  std::function<void(uint64_t, uint64_t)> callback();
  /// The check itself; `force` skips the rate limit (e.g. the last call of a run).
  void check(uint64_t done, uint64_t total, bool force = false);
  /// Pending signals only, now (no progress call): between the runs of a sweep.
  void check_signals();

 private:
  py::object progress_;  // None or a callable; touched only with the GIL held
  std::chrono::steady_clock::time_point next_;
};

// ---- arrays ----

/// A NumPy array over memory the array then owns: a capsule holding `owner` is its base, so the
/// memory is freed when the last view of it goes (no copy is made). dtype: float32 or float64.
py::array owned_array(std::shared_ptr<ResultMemory> owner, bool fp64, const std::vector<py::ssize_t>& shape);

/// Any array-like of numbers as doubles in C order, with its shape (a copy: for small inputs such
/// as means and weights). Throws gmmdiff::Error("<what> must be an array of numbers ...") otherwise.
std::vector<double> to_doubles(py::handle obj, const std::string& what, std::vector<py::ssize_t>* shape);


// ---- values with the CLI's names and messages ----

/// The mixture argument of sample/tv/...: a gmmdiff.Mixture, or the path of a model JSON file.
std::shared_ptr<const Mixture> as_mixture(py::handle obj);

/// A str or os.PathLike as a path; None as "" when allow_none. Throws Error naming `what` otherwise.
std::string as_path(py::handle obj, const std::string& what, bool allow_none = false);

/// The schedule keyword arguments (T, schedule, c0, c1, schedule_file, schedule_kind) as the CLI's
/// --T --schedule --c0 --c1 --schedule-file --schedule-kind, built and checked (without the GIL).
/// name_arg and file_arg: the caller's names of the schedule and file arguments, for its messages
/// (gmmdiff.schedule's are name and file).
Schedule schedule_from_args(int64_t T, const std::string& schedule, double c0, double c1, py::handle schedule_file,
                            const std::string& schedule_kind, const std::string& name_arg = "schedule",
                            const std::string& file_arg = "schedule_file");

/// The score error's time profile and bias direction from the keyword arguments error_profile,
/// error_factors and bias_direction, as the CLI's --error-profile, --error-factors and
/// --bias-direction (SamplerArgs::build: the same checks, messages and order) into err.
/// error_factors: None, the path of a text file of factors (read as the CLI reads it), or a 1-D
/// sequence of T numbers f(1..T); either implies error_profile 'file'. bias_direction: 'random',
/// 'means', 'v1,...,vd', or a 1-D sequence of d numbers. Returns the bias direction as the CLI's
/// text (the JSON parameters' bias_direction): the str given, or the numbers joined by commas
/// (Python's repr of each, so that it reads back exactly). Wrong types are TypeErrors.
std::string score_error_from_args(ScoreError& err, const std::string& error_profile, py::handle error_factors,
                                  py::handle bias_direction);

/// n >= 0 as a count, else Error("<what> = <value> (<why>)") as the CLI words it.
uint64_t as_count(int64_t v, const char* what, const char* why);

/// JSON text as Python objects (json.loads): dicts, lists, floats that round-trip exactly.
py::object json_loads(const std::string& text);
/// Python objects as JSON text (json.dumps).
std::string json_dumps(py::handle obj);

/// Fills the dict `info` (when it is a dict; None: nothing) with `values`; anything else is a TypeError.
void fill_info(py::handle info, const py::dict& values);

// ---- registration, one function per binding file ----
void init_mixture(py::module_& m);
void init_sample(py::module_& m);
void init_tv(py::module_& m);
void init_sweep(py::module_& m);
void init_bracket(py::module_& m);

}  // namespace gmmdiff::python
