// gmmdiff (dist): the MPI implementation of Comm (host/dist/mpi_comm.cpp, built when CMake finds
// MPI: GMMDIFF_HAVE_MPI). Only comm.cpp calls it; no MPI type leaves mpi_comm.cpp.
#pragma once
#include <memory>

#include "dist/comm.hpp"

namespace gmmdiff::dist::mpi {

/// Initialises MPI (MPI_THREAD_FUNNELED: only the main thread calls MPI) and returns a Comm over a
/// duplicate of MPI_COMM_WORLD, with its local ranks from an MPI_COMM_TYPE_SHARED split.
std::unique_ptr<Comm> init(int* argc, char*** argv);
/// MPI_Finalize, when MPI was initialised and is not finalised yet.
void finalize();

}  // namespace gmmdiff::dist::mpi
