// gmmdiff info: the build configuration, backends, devices and precisions available.
#include <omp.h>
#include <unistd.h>

#include <cstdlib>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.hpp"
#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/version.hpp"

namespace gmmdiff::cli {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string host_name() {
  char buf[256] = {0};
  return ::gethostname(buf, sizeof buf - 1) == 0 ? buf : "unknown";
}

Runner setup(CLI::App& sub) {
  auto as_json = std::make_shared<bool>(false);
  sub.add_flag("--json", *as_json, "Print the same as JSON");
  return [as_json]() {
    // Under MPI every rank says where it runs (its machine, local rank, threads, GPU); rank 0
    // prints them all (docs/scale.md: how to check the placement of a job).
    dist::Comm& comm = dist::world();
    const nlohmann::json me = {{"rank", comm.rank()},
                               {"host", host_name()},
                               {"local_rank", comm.local_rank()},
                               {"local_size", comm.local_size()},
                               {"threads", omp_get_max_threads()},
                               {"cuda_visible_devices", std::getenv("CUDA_VISIBLE_DEVICES")
                                                            ? std::getenv("CUDA_VISIBLE_DEVICES")
                                                            : ""},
                               {"placement", dist::placement()}};
    const std::vector<std::string> all = comm.gather(me.dump(), 0);
    if (!comm.root()) return 0;
    nlohmann::json ranks = nlohmann::json::array();
    for (const auto& r : all) ranks.push_back(nlohmann::json::parse(r));
    nlohmann::json j;
    j["version"] = version();
    j["commit"] = build_commit();
    j["cuda_compiled"] = cuda_compiled();
    j["cuda_runtime"] = cuda_runtime_version();
    j["cpu"] = {{"model", cpu_model()}, {"threads", omp_get_max_threads()}, {"blas", "OpenBLAS (OpenMP build)"}};
    j["precisions"] = {"fp32", "fp64"};
    nlohmann::json devs = nlohmann::json::array();
    for (const auto& d : cuda_devices())
      devs.push_back({{"name", d.name},
                      {"total_bytes", d.total_bytes},
                      {"free_bytes", d.free_bytes},
                      {"compute_capability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)},
                      {"sm_count", d.sm_count}});
    j["cuda_devices"] = devs;
    std::vector<std::string> backends{"cpu"};
    if (!devs.empty()) backends.push_back("cuda");
    j["backends"] = backends;
    j["auto_backend"] = devs.empty() ? "cpu" : "cuda";
    j["mpi"] = {{"compiled", dist::mpi_compiled()}, {"launched", comm.kind() == "mpi"}, {"size", comm.size()},
                {"ranks", ranks}};
    if (*as_json) {
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    std::cout << "gmmdiff " << version() << "\n"
              << "  CUDA backend:  " << (cuda_compiled() ? "compiled" : "not compiled");
    if (cuda_compiled()) std::cout << " (" << cuda_runtime_version() << ")";
    std::cout << "\n  CPU backend:   " << cpu_model() << ", " << omp_get_max_threads()
              << " OpenMP threads, OpenBLAS\n"
              << "  precisions:    fp32 (default), fp64 on every backend\n"
              << "  CUDA devices:  " << (devs.empty() ? "none found" : "") << "\n";
    for (const auto& d : devs)
      std::cout << "    " << d["name"].get<std::string>() << ", " << (d["total_bytes"].get<std::size_t>() >> 20)
                << " MiB (" << (d["free_bytes"].get<std::size_t>() >> 20) << " MiB free), sm_"
                << d["compute_capability"].get<std::string>() << ", " << d["sm_count"].get<int>() << " SMs\n";
    std::cout << "  backends:      " << (devs.empty() ? "cpu" : "cpu, cuda") << " (auto = "
              << j["auto_backend"].get<std::string>() << ")\n";
    std::cout << "  MPI:           " << (dist::mpi_compiled() ? "compiled" : "not compiled");
    if (comm.kind() == "mpi") std::cout << ", this job has " << comm.size() << " rank" << (comm.size() == 1 ? "" : "s");
    else if (dist::mpi_compiled()) std::cout << " (not launched by mpirun or srun: one process)";
    std::cout << "\n";
    if (comm.kind() == "mpi")
      for (const auto& r : ranks) {
        std::cout << "    rank " << r["rank"].get<int>() << " on " << r["host"].get<std::string>() << ", local rank "
                  << r["local_rank"].get<int>() << " of " << r["local_size"].get<int>() << ", "
                  << r["threads"].get<int>() << " OpenMP threads";
        const std::string vis = r["cuda_visible_devices"].get<std::string>();
        if (!vis.empty()) std::cout << ", CUDA_VISIBLE_DEVICES=" << vis;
        std::cout << "\n";
      }
    return 0;
  };
}

const Registrar reg("info", "Build configuration, backends, devices found, precision support, MPI ranks", 90, setup,
                    Ranks::kAll);

}  // namespace
}  // namespace gmmdiff::cli
