// gmmdiff (dist): the .npy outputs of a run split over the ranks of a job (docs/scale.md): one
// file each, every rank writing its own rows at their offset (io/npy_slices.hpp), renamed into
// place only when every rank has written and flushed its rows; on any failure no file is left.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/comm.hpp"
#include "io/npy_slices.hpp"

namespace gmmdiff::dist {

class SharedNpyOut {
 public:
  /// Collective. Rank 0 checks each path and the room for it and creates its temporary
  /// (temp_name_for's name on rank 0); then every rank opens them. Each file is (rows, cols), float32 or
  /// float64. A failure on any rank is every rank's error (collective()).
  SharedNpyOut(Comm& comm, const std::vector<std::string>& paths, uint64_t rows, uint64_t cols, bool fp64);
  /// Uncommitted (an error or a signal unwound the run): removes the temporaries.
  ~SharedNpyOut();
  SharedNpyOut(const SharedNpyOut&) = delete;
  SharedNpyOut& operator=(const SharedNpyOut&) = delete;

  /// File i (in the order of the paths) of this rank.
  NpySlices& file(std::size_t i) { return *files_.at(i); }
  /// Collective: every rank flushes and closes its rows; when all succeeded, rank 0 renames every
  /// file into place.
  void commit();

 private:
  void release();  ///< closes, removes the uncommitted temporaries, forgets them

  Comm& comm_;
  std::vector<std::string> paths_, temps_;
  std::vector<std::unique_ptr<NpySlices>> files_;
  bool committed_ = false;
};

}  // namespace gmmdiff::dist
