// gmmdiff Python module: tv(), the TV of a sample against the target through statistics
// (gmmdiff/tv.hpp; docs/tv.md), as `gmmdiff tv --json`: the same figures, key for key (the dict
// is tv_json's text, the CLI's --json, parsed).
// The sample is an array of any dtype the CLI reads (float32, float64, int32, int64), any memory
// order and strides, or the path of a .npy file. It reaches the library chunk by chunk
// (tv_of_rows): a float64 C-contiguous array without a copy, anything else converted one chunk
// at a time, so memory never holds a second copy of the sample.
#include <cstring>
#include <optional>

#include "common.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/tv.hpp"

namespace gmmdiff::python {

namespace {

/// Copies rows [first, first + rows) of a 1-D or 2-D array of T with byte strides into dst (doubles).
template <typename T>
void convert_rows(const char* base, py::ssize_t s0, py::ssize_t s1, int d, uint64_t first, std::size_t rows,
                  double* dst) {
  for (std::size_t r = 0; r < rows; ++r) {
    const char* row = base + static_cast<py::ssize_t>(first + r) * s0;
    for (int j = 0; j < d; ++j) {
      T v;
      std::memcpy(&v, row + j * s1, sizeof(T));
      dst[r * static_cast<std::size_t>(d) + j] = static_cast<double>(v);
    }
  }
}

enum class Kind { F4, F8, I4, I8 };

Kind kind_of(const py::array& a) {
  const py::dtype dt = a.dtype();
  const bool native = dt.attr("isnative").cast<bool>();
  const char k = dt.kind();
  const auto size = dt.itemsize();
  if (native && k == 'f' && size == 4) return Kind::F4;
  if (native && k == 'f' && size == 8) return Kind::F8;
  if (native && k == 'i' && size == 4) return Kind::I4;
  if (native && k == 'i' && size == 8) return Kind::I8;
  throw Error("sample: unsupported dtype '" + py::str(static_cast<py::handle>(dt)).cast<std::string>() +
              "' (allowed: float32, float64, int32, int64, native byte order)");
}

py::dict tv(py::object sample, py::object mixture, const std::string& stats, int bins, int bootstrap, uint64_t seed,
            int64_t reference_n, const std::string& backend, int threads, int64_t chunk) {
  TvOptions o;
  o.stats = stats;
  o.bins = bins;
  o.bootstrap = bootstrap;
  o.seed = seed;
  o.reference_n = as_count(reference_n, "--reference-n", "need >= 0; 0: the sample's n");
  const std::size_t chunk_rows = as_count(chunk, "--chunk", "need >= 0; 0: automatic");
  const std::shared_ptr<const Mixture> target = as_mixture(mixture);
  const int d = target->d;
  Interrupter interrupter;
  TvReport r;
  std::string be_name, label;
  std::optional<std::string> sample_label;  // the file's name; null for an array, as `against` is

  if (py::isinstance<py::str>(sample) || py::hasattr(sample, "__fspath__")) {
    // A .npy file, streamed as `gmmdiff tv` streams it.
    const std::string path = as_path(sample, "sample");
    sample_label = path;
    label = path;
    py::gil_scoped_release nogil;
    NpyReader reader(path);
    check_tv_sample(reader, d);
    auto be = make_backend(backend, threads);
    be_name = be->name();
    std::vector<double> buf;
    auto next = [&](uint64_t first, std::size_t rows) -> const double* {
      interrupter.check(first, reader.rows());
      if (buf.size() < rows * d) {
        try {
          buf.resize(rows * d);
        } catch (const std::bad_alloc&) {
          throw ResourceError(detail::cat(path, ": cannot allocate a chunk of ", rows, " rows x d = ", d,
                                          " doubles; try a smaller chunk"));
        }
      }
      const uint64_t got = reader.read_rows(buf.data(), rows);
      GMMDIFF_EXPECTS(got == rows, path, ": read ", got, " rows at row ", first, " where ", rows, " were due");
      return buf.data();
    };
    r = tv_of_rows(*target, reader.rows(), o, *be, next, chunk_rows, path + ": ");
  } else {
    py::array a = py::array::ensure(sample);
    if (!a) {
      PyErr_Clear();
      throw Error("sample: must be an (n, d) array or the path of a .npy file, not " +
                  std::string(py::str(py::type::handle_of(sample).attr("__name__"))));
    }
    label = "sample";
    std::vector<uint64_t> shape(a.shape(), a.shape() + a.ndim());
    // The shape first, as the CLI checks a file's header before the values' type.
    check_tv_sample(shape, d, label);
    const Kind kind = kind_of(a);
    const uint64_t rows = shape[0];
    const char* base = static_cast<const char*>(a.data());
    const py::ssize_t s0 = a.strides(0), s1 = a.ndim() == 2 ? a.strides(1) : 0;
    const bool direct = kind == Kind::F8 && (a.flags() & py::array::c_style) &&
                        (reinterpret_cast<std::uintptr_t>(base) % alignof(double)) == 0;
    py::gil_scoped_release nogil;
    auto be = make_backend(backend, threads);
    be_name = be->name();
    std::vector<double> buf;
    auto next = [&](uint64_t first, std::size_t n) -> const double* {
      interrupter.check(first, rows);
      if (direct) return reinterpret_cast<const double*>(base + static_cast<py::ssize_t>(first) * s0);
      if (buf.size() < n * d) {
        try {
          buf.resize(n * d);
        } catch (const std::bad_alloc&) {
          throw ResourceError(detail::cat("sample: cannot allocate a chunk of ", n, " rows x d = ", d,
                                          " doubles; try a smaller chunk"));
        }
      }
      switch (kind) {
        case Kind::F4: convert_rows<float>(base, s0, s1, d, first, n, buf.data()); break;
        case Kind::F8: convert_rows<double>(base, s0, s1, d, first, n, buf.data()); break;
        case Kind::I4: convert_rows<int32_t>(base, s0, s1, d, first, n, buf.data()); break;
        case Kind::I8: convert_rows<int64_t>(base, s0, s1, d, first, n, buf.data()); break;
      }
      return buf.data();
    };
    r = tv_of_rows(*target, rows, o, *be, next, chunk_rows);
  }
  if (r.nonfinite > 0) {
    // The CLI's warning on stderr, as a Python warning.
    const std::string msg = detail::cat(label, ": ", r.nonfinite, " of ", r.n,
                                        " rows hold NaN or Inf (excluded; TV refers to the finite rows)");
    if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
  }
  // The CLI's --json text, parsed: the same keys and values by construction.
  return json_loads(tv_json(r, *target, o, be_name, sample_label, std::nullopt)).cast<py::dict>();
}

}  // namespace

void init_tv(py::module_& m) {
  m.def("tv", &tv, py::arg("sample"), py::arg("mixture"), py::kw_only(), py::arg("stats") = "means,meansperp,random:8,radial,logp",
        py::arg("bins") = 0, py::arg("bootstrap") = 200, py::arg("seed") = 0, py::arg("reference_n") = 0,
        py::arg("backend") = "auto", py::arg("threads") = 0, py::arg("chunk") = 0, R"doc(
Total variation of a sample against the mixture through 1-D and 2-D statistics (docs/tv.md), as
`gmmdiff tv --json`: a dict with the same keys and values (both are tv_json's text): sample
(the file's name, None for an array), n, nonfinite, finite, d, K, backend, options, stats, best,
max, best_kl, max_kl, selection, against (None), against_n, against_nonfinite, notes. Each
statistic's tv is a LOWER BOUND on TV(X_0, Y) (a statistic cannot increase TV), with its noise
floor, 95% CI, bias-corrected value and whether it is resolved from the floor; max is the
statistic with the largest tv_corrected, max_kl the one with the largest kl_mm.

sample: an (n, d) (or (n,) for d = 1) array of float32, float64, int32 or int64, in any memory
order and strides (only a float64 C-contiguous array is read in place; others are converted a
chunk at a time), or the path of a .npy file (streamed). Rows with NaN or Inf are excluded with a
RuntimeWarning, as the CLI warns. stats: means[:r], means2d, meansperp, random:M, axes[:m],
file:PATH.npy, radial[:0], logp; bins (0: from n), bootstrap, seed, reference_n, backend, threads, chunk: the CLI's
--bins, --bootstrap, --seed, --reference-n, --backend, --threads, --chunk.)doc");
}

}  // namespace gmmdiff::python
