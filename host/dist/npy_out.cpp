// gmmdiff (dist): .npy outputs written by every rank of a job (host/dist/npy_out.hpp).
#include "dist/npy_out.hpp"

#include <cstdio>

#include "io/atomic_file.hpp"

namespace gmmdiff::dist {

SharedNpyOut::SharedNpyOut(Comm& comm, const std::vector<std::string>& paths, uint64_t rows, uint64_t cols,
                           bool fp64)
    : comm_(comm), paths_(paths) {
  // One temporary name for all ranks: rank 0's, named as NpyWriter names it in one process
  // (temp_name_for: rank 0's host and pid, so that a later run there removes it after a SIGKILL).
  for (const auto& p : paths) {
    std::string tmp = comm.root() ? temp_name_for(p) : std::string();
    comm.broadcast(tmp, 0);
    temps_.push_back(tmp);
    register_temp(temps_.back());  // a signal on any rank removes it
  }
  try {
    on_root(comm, [&] {
      for (std::size_t i = 0; i < paths.size(); ++i) NpySlices::create(paths[i], temps_[i], rows, cols, fp64);
    });
    collective(comm, [&] {
      for (std::size_t i = 0; i < paths.size(); ++i)
        files_.push_back(std::make_unique<NpySlices>(paths[i], temps_[i], rows, cols, fp64));
    });
  } catch (...) {
    release();
    throw;
  }
}

SharedNpyOut::~SharedNpyOut() { release(); }

void SharedNpyOut::release() {
  files_.clear();
  for (const auto& t : temps_) {
    if (!committed_) std::remove(t.c_str());  // every rank tries: the first one removes it
    unregister_temp(t);
  }
  temps_.clear();
}

void SharedNpyOut::commit() {
  collective(comm_, [&] {
    for (auto& f : files_) f->finish();
  });
  on_root(comm_, [&] {
    for (std::size_t i = 0; i < paths_.size(); ++i) NpySlices::commit(temps_[i], paths_[i]);
  });
  committed_ = true;
}

}  // namespace gmmdiff::dist
