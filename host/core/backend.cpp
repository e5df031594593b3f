// gmmdiff: the Backend interface's default methods and its shared value types (backend.hpp).
// Both backends build on these; choosing one is the driver's job (host/driver/make_backend.cpp).
#include "gmmdiff/backend.hpp"

#include <chrono>

#include "gmmdiff/error.hpp"

namespace gmmdiff {

void Backend::set_step_path(const std::string& path) {
  GMMDIFF_EXPECTS(path == "auto" || path == "products", "--path ", path, ": the ", name(),
                  " backend has auto and products");
}

double Backend::time_seconds(const std::function<void()>& work) {
  synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  work();
  synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Backend::stream_chunk(std::size_t row_bytes, std::vector<unsigned char>& scratch,
                           const PieceConsumer& consume) const {
  if (rows_ == 0) return;
  scratch.resize(rows_ * row_bytes);
  download(scratch.data());
  consume(scratch.data(), 0, rows_);
}

double Backend::copy_bandwidth(std::size_t) {
  throw Error("the " + name() + " backend does not measure its copy bandwidth");
}

double Backend::flop_limit(Precision) {
  throw Error("the " + name() + " backend does not know its FLOP limit");
}

HistogramCounts HistogramCounts::zeros(const HistogramSpec& spec) {
  HistogramCounts c;
  c.one_d.resize(spec.edges.size());
  for (std::size_t v = 0; v < spec.edges.size(); ++v)
    c.one_d[v].assign(spec.edges[v].size() >= 1 ? spec.edges[v].size() - 1 : 0, 0);
  c.two_d.resize(spec.pairs.size());
  for (std::size_t p = 0; p < spec.pairs.size(); ++p) {
    const auto [a, b] = spec.pairs[p];
    c.two_d[p].assign((spec.edges.at(a).size() - 1) * (spec.edges.at(b).size() - 1), 0);
  }
  return c;
}

}  // namespace gmmdiff
