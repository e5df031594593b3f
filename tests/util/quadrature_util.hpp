// Test helper: long double Gauss-Legendre quadrature, the independent reference that the special
// functions and the exact TV bin masses are checked against.
#pragma once
#include <cmath>
#include <functional>
#include <vector>

namespace gmmdiff::test {

using LD = long double;

constexpr int kGaussPoints = 20;

/// Nodes and weights of Gauss-Legendre on [-1, 1], by Newton on the Legendre recurrence.
inline void gauss_legendre(int n, std::vector<LD>& x, std::vector<LD>& w) {
  x.resize(n);
  w.resize(n);
  const LD pi = 3.141592653589793238462643383279502884L;
  for (int i = 0; i < n; ++i) {
    LD z = std::cos(pi * (i + 0.75L) / (n + 0.5L)), dp = 1;
    for (int it = 0; it < 100; ++it) {
      LD p1 = 1, p2 = 0;
      for (int j = 1; j <= n; ++j) {
        const LD p3 = p2;
        p2 = p1;
        p1 = ((2 * j - 1) * z * p2 - (j - 1) * p3) / j;
      }
      dp = n * (z * p1 - p2) / (z * z - 1);
      const LD z1 = z;
      z = z1 - p1 / dp;
      if (std::fabs(z - z1) < 1e-19L) break;
    }
    x[i] = z;
    w[i] = 2 / ((1 - z * z) * dp * dp);
  }
}

/// Composite kGaussPoints-point Gauss-Legendre of f over [lo, hi] with `panels` panels.
inline LD integrate(const std::function<LD(LD)>& f, LD lo, LD hi, int panels) {
  static std::vector<LD> X, W;
  if (X.empty()) gauss_legendre(kGaussPoints, X, W);
  const LD h = (hi - lo) / panels;
  LD s = 0;
  for (int p = 0; p < panels; ++p) {
    const LD c = lo + (p + 0.5L) * h;
    for (int i = 0; i < kGaussPoints; ++i) s += W[i] * f(c + h / 2 * X[i]);
  }
  return s * h / 2;
}

}  // namespace gmmdiff::test
