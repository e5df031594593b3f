// gmmdiff (sweep): what running a sweep shares between one process (run_sweep) and the ranks of an
// MPI job (host/sweep/distributed.hpp): the backends of its runs and its output directory.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/sweep.hpp"

namespace gmmdiff {

class DirLock;
class ResultsLog;

/// The backends a sweep's runs name, made once each (a name the machine cannot serve, e.g. cuda
/// without a device, is an error here, before anything is written).
std::map<std::string, std::unique_ptr<Backend>> make_backends(const SweepSpec& spec, int threads);

/// The output directory of a running sweep, held by its one writer: created, locked (DirLock),
/// spec.json written or checked, results.jsonl opened (a partial last line dropped) and results.csv
/// written, with the notes of what was found (SweepCallbacks::on_note). record() appends each
/// finished run's row in the order the rows come.
class SweepDir {
 public:
  SweepDir(const SweepSpec& spec, const std::string& out_dir, const SweepCallbacks& cb);
  ~SweepDir();
  SweepDir(const SweepDir&) = delete;
  SweepDir& operator=(const SweepDir&) = delete;

  /// Whether run i of the sweep has its row in results.jsonl.
  bool done(std::size_t i) const;
  /// Appends the row of run i (its sweep name and index set here), rewrites results.csv when due,
  /// and calls on_row. Throws on a duplicate key or an I/O error.
  void record(SweepRow row, std::size_t i);
  /// Runs finished so far, the resumed ones included.
  std::size_t finished() const { return finished_; }
  /// Writes results.csv (when a row was added) and returns every row of the sweep, in run order.
  SweepOutcome finish();

 private:
  const SweepSpec& spec_;
  const SweepCallbacks& cb_;
  std::string out_dir_, log_path_, csv_path_;
  std::unique_ptr<DirLock> lock_;
  std::unique_ptr<ResultsLog> log_;
  SweepOutcome out_;
  std::size_t finished_ = 0;
};

}  // namespace gmmdiff
