// Test helper: the command line of `mpirun` for the MPI tests (label mpi), set up for a machine or
// container without a network: shared memory and loopback only, more ranks than cores allowed,
// and, as root, the permission OpenMPI otherwise refuses.
#pragma once
#include <unistd.h>

#include <string>

namespace gmmdiff::test {

/// The environment and options every mpirun of the tests gets.
inline std::string mpirun_prefix(int np) {
  std::string s =
      "OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_oob_tcp_if_include=lo "
      "OMPI_MCA_rmaps_base_oversubscribe=1 ";
  s += std::string("'") + GMMDIFF_MPIEXEC + "' -np " + std::to_string(np) + " --oversubscribe ";
  if (::geteuid() == 0) s += "--allow-run-as-root ";
  return s;
}

/// `mpirun -np np gmmdiff <args>` (args already shell-quoted), for run_cli-like use.
inline std::string mpirun_cli(int np, const std::string& args) {
  return mpirun_prefix(np) + "'" + GMMDIFF_CLI_PATH + "' " + args;
}

}  // namespace gmmdiff::test
