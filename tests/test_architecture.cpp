// The layering rule of docs/architecture.md, checked on the source tree: a file in host/<layer>/
// (or cuda/...) includes public headers and private headers of its own layer or of layers below
// it, never above; no file includes through "../". A change that breaks the rule fails here with
// the file, the line and the two layers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// The layers from the bottom up. cuda/ sits beside cpu/: both implement the Backend interface.
const std::vector<std::string> kLayers = {"io",    "core",   "cpu",    "driver", "dist", "tv", "bounds",
                                          "sweep", "report", "claims", "bench",  "cli"};

int rank_of(const std::string& layer) {
  for (std::size_t i = 0; i < kLayers.size(); ++i)
    if (kLayers[i] == layer) return static_cast<int>(i);
  return -1;
}

// The layer of each public header (include/gmmdiff/): the layer its implementation lives in.
const std::map<std::string, std::string> kPublic = {
    {"error.hpp", "io"},      {"npy.hpp", "io"},         {"types.hpp", "core"},       {"version.hpp", "core"},
    {"model.hpp", "core"},    {"schedule.hpp", "core"},  {"backend.hpp", "core"},     {"detail/hd.hpp", "core"},
    {"detail/philox.hpp", "core"}, {"detail/step_math.hpp", "core"}, {"sampler.hpp", "driver"},
    {"detail/bounds_math.hpp", "core"}, {"bounds_kernels.hpp", "core"},
    {"tv.hpp", "tv"},         {"bounds.hpp", "bounds"}, {"quantities.hpp", "bounds"}, {"bracket.hpp", "bounds"}, {"sweep.hpp", "sweep"},    {"report.hpp", "report"},    {"claims.hpp", "claims"},    {"bench.hpp", "bench"},
};

// The layer of an included path, or "" when it is not one of ours (a system or library header).
std::string layer_of_include(const std::string& inc) {
  if (inc.rfind("gmmdiff/", 0) == 0) {
    const auto it = kPublic.find(inc.substr(8));
    return it == kPublic.end() ? "?public" : it->second;
  }
  if (inc.rfind("cuda/", 0) == 0) return "cpu";  // the CUDA backend: the same level as cpu/
  const auto slash = inc.find('/');
  if (slash != std::string::npos && rank_of(inc.substr(0, slash)) >= 0) return inc.substr(0, slash);
  return "";
}

struct Include {
  int line;
  std::string path;
};

std::vector<Include> includes_of(const fs::path& file) {
  static const std::regex re(R"re(^\s*#\s*include\s*"([^"]+)")re");
  std::ifstream in(file);
  std::vector<Include> out;
  std::string s;
  for (int line = 1; std::getline(in, s); ++line) {
    std::smatch m;
    if (std::regex_search(s, m, re)) out.push_back({line, m[1]});
  }
  return out;
}

bool is_source(const fs::path& p) {
  const std::string e = p.extension().string();
  return e == ".cpp" || e == ".hpp" || e == ".cu" || e == ".cuh" || e == ".h";
}

const fs::path kRoot(GMMDIFF_SOURCE_DIR);

TEST(Architecture, PublicHeadersHaveALayer) {
  for (const auto& e : fs::recursive_directory_iterator(kRoot / "include/gmmdiff")) {
    if (!e.is_regular_file() || !is_source(e.path())) continue;
    const std::string rel = fs::relative(e.path(), kRoot / "include/gmmdiff").generic_string();
    EXPECT_TRUE(kPublic.count(rel)) << "include/gmmdiff/" << rel
                                    << " has no layer in tests/test_architecture.cpp (kPublic) "
                                       "and docs/architecture.md";
  }
}

TEST(Architecture, NoFileIncludesALayerAboveItsOwn) {
  int checked = 0;
  auto check_tree = [&](const fs::path& dir, auto layer_of_file) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (!e.is_regular_file() || !is_source(e.path())) continue;
      const std::string rel = fs::relative(e.path(), kRoot).generic_string();
      const std::string own = layer_of_file(rel);
      ASSERT_GE(rank_of(own), 0) << rel << " is in no layer: put it in one of host/<layer>/ (docs/architecture.md)";
      ++checked;
      for (const Include& inc : includes_of(e.path())) {
        const std::string l = layer_of_include(inc.path);
        if (l.empty()) continue;
        EXPECT_NE(l, "?public") << rel << ":" << inc.line << " includes " << inc.path
                                << ", a public header with no layer";
        EXPECT_LE(rank_of(l), rank_of(own))
            << rel << ":" << inc.line << " (layer " << own << ") includes " << inc.path << " (layer " << l
            << "): a layer may include only its own and the layers below it (docs/architecture.md)";
      }
    }
  };
  check_tree(kRoot / "host", [](const std::string& rel) {
    const auto a = rel.find('/'), b = rel.find('/', a + 1);
    return b == std::string::npos ? std::string() : rel.substr(a + 1, b - a - 1);
  });
  check_tree(kRoot / "cuda", [](const std::string&) { return std::string("cpu"); });
  check_tree(kRoot / "include/gmmdiff", [](const std::string& rel) {
    const auto it = kPublic.find(rel.substr(std::string("include/gmmdiff/").size()));
    return it == kPublic.end() ? std::string() : it->second;
  });
  EXPECT_GT(checked, 40);
}

TEST(Architecture, CudaLayersIncludeDownwards) {
  // cuda/rt (RAII owners, error checks) < cuda/kernels (kernels, launchers, cuBLAS calls) < cuda/.
  auto rank = [](const std::string& rel) {
    if (rel.rfind("cuda/rt/", 0) == 0) return 0;
    if (rel.rfind("cuda/kernels/", 0) == 0) return 1;
    return 2;
  };
  for (const auto& e : fs::recursive_directory_iterator(kRoot / "cuda")) {
    if (!e.is_regular_file() || !is_source(e.path())) continue;
    const std::string rel = fs::relative(e.path(), kRoot).generic_string();
    for (const Include& inc : includes_of(e.path())) {
      if (inc.path.rfind("cuda/", 0) != 0) continue;
      EXPECT_LE(rank(inc.path), rank(rel)) << rel << ":" << inc.line << " includes " << inc.path
                                           << ", a cuda/ layer above its own";
    }
  }
}

TEST(Architecture, NothingIncludesThroughDotDot) {
  for (const char* top : {"host", "cuda", "include", "tests", "fuzz", "python"}) {
    if (!fs::exists(kRoot / top)) continue;
    for (const auto& e : fs::recursive_directory_iterator(kRoot / top)) {
      if (!e.is_regular_file() || !is_source(e.path())) continue;
      for (const Include& inc : includes_of(e.path()))
        EXPECT_EQ(inc.path.find("../"), std::string::npos)
            << fs::relative(e.path(), kRoot).generic_string() << ":" << inc.line << " includes " << inc.path
            << ": include by the path from host/, the project root or tests/";
    }
  }
}

}  // namespace
