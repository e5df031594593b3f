// gmmdiff (private to host/report/): the small statistics behind the sweep report: Student t
// CDF and quantile, the normal quantile, least-squares lines with confidence intervals on the
// slope (the LineFit of include/gmmdiff/report.hpp), and the median.
#pragma once
#include <vector>

#include "gmmdiff/report.hpp"

namespace gmmdiff {

/// Student t distribution: CDF and quantile (dof > 0, p in (0, 1)). Own implementation through
/// the regularised incomplete beta function (continued fraction), inverted by bisection.
double student_t_cdf(double t, double dof);
double student_t_quantile(double p, double dof);

/// Standard normal quantile (p in (0, 1)).
double normal_quantile(double p);

/// Least-squares fit y = a + b x, or with pooled intercepts y = a_g + b x (one per group id).
/// Without sigma: ordinary least squares, se(b) from the residuals, CI b -/+ t_{(1+level)/2, dof}
/// se(b), dof = n - 2 (n - groups - 1 when pooled).
/// With sigma (each point's standard error): weighted least squares, weights 1/sigma^2, and
/// se(b) = max(the se the sigmas imply, that se scaled by sqrt(chi^2/dof)): the interval reflects
/// both each point's own uncertainty and any scatter beyond it (the Birge ratio). With dof = 0
/// (two points) the sigmas alone give the interval (normal quantile).
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y, double level = 0.95,
                 const std::vector<double>& sigma = {});
LineFit fit_pooled(const std::vector<double>& x, const std::vector<double>& y, const std::vector<int>& group,
                   double level = 0.95, const std::vector<double>& sigma = {});

/// Median (linear interpolation between the middle order statistics); NaN when x is empty.
double median_of(const std::vector<double>& x);

}  // namespace gmmdiff
