// gmmdiff: the Jacobian J_t = d s_t / d x of the exact mixture score at a point (THEORY.md,
// "Deterministic samplers" and "Quantities the proofs use"), in factored form and without ever
// forming a d x d matrix:
//   J = -D + sum_k u_k u_k^T,   u_k = sqrt(w_k) delta_k,   delta_k = g_k - s,
// D = a I (isotropic components, a = sum_k w_k / v_k) or diag(sum_k w_k / V_k) (diagonal).
// Isotropic: everything follows from the K x K Gram M = [<u_j, u_k>] (O(K^2) per point from the
// logits' products): log det(I + kappa J) by the matrix determinant lemma and a K x K Cholesky,
// tr(I + J) = d (1 - a) + tr M, and ||J||_op from the eigenvalues of M (J's spectrum is
// {mu_i - a} and -a). Diagonal: the rows u_k are kept (O(K^2 d) per determinant).
//
// The per-point arithmetic is gmmdiff/detail/bounds_math.hpp (the engines' hot loops call it
// directly); this unit is the host API around it, for the bounds and for measuring tr(I + J_t)
// and ||J_t||_op over samples.
#pragma once
#include <functional>
#include <vector>

#include "gmmdiff/backend.hpp"

namespace gmmdiff::bounds {

/// What the Jacobian of step t's score needs: the step's coefficients (backend.hpp, StepCoeffs:
/// P_k = sqrt(abar_t) mu_k / V_k, Q_k = 1 / V_k, the logits' bias) and P P^T.
struct JacobianStep {
  int d = 0, K = 0;
  bool diagonal = false;
  std::vector<double> P;     ///< [K, d]
  std::vector<double> Q;     ///< [K] (isotropic) or [K, d] (diagonal)
  std::vector<double> bias;  ///< [K]
  std::vector<double> PP;    ///< [K, K] P P^T (isotropic only)
};
/// From step coefficients c (of the mixture whose exact score is differentiated; the injected
/// `scale` error multiplies J by c.score_scale, which callers fold into kappa).
JacobianStep jacobian_step(const StepCoeffs& c, int d, int K);
/// P P^T [K, K] of a step (the isotropic Gram route needs it once per step).
std::vector<double> gram_of_rows(const std::vector<double>& P, int K, int d);

/// J at one point, factored.
struct JacobianAt {
  int d = 0, K = 0;
  bool diagonal = false;
  std::vector<double> w;     ///< [K] posterior weights at the point
  double a = 0;              ///< isotropic: J = -a I + U U^T
  std::vector<double> M;     ///< [K, K] isotropic: M = U^T U, M_jk = sqrt(w_j w_k) <delta_j, delta_k>
  std::vector<double> dvec;  ///< [d] diagonal: D = diag(dvec)
  std::vector<double> U;     ///< [K, d] diagonal: the rows u_k
};

/// The factored J at point y [d] (computes the logits and weights, O(K d), then the factor).
/// gram = false skips the K x K matrix M of the isotropic case (O(K^2) per point): the rows U and a
/// are enough for trace_i_plus_j and op_norm_lanczos (not for op_norm or the log-determinant).
void jacobian_at(const JacobianStep& js, const double* y, JacobianAt& out, bool gram = true);

struct LogDet {
  double value = 0;              ///< log det(I + kappa J) when positive_definite
  bool positive_definite = false;  ///< I + kappa J is positive definite (the step map is a local
                                   ///< diffeomorphism with positive determinant there)
};
/// log det(I + kappa J). Isotropic: b = 1 - kappa a > 0 takes the determinant lemma and a K x K
/// Cholesky; otherwise the eigenvalues of M decide (J's spectrum, above). Diagonal: det(B) times a
/// K x K determinant when every B_jj = 1 - kappa D_jj > 0, else a dense d x d Cholesky (d <= 4096).
LogDet log_det_i_plus_kappa_j(const JacobianAt& j, double kappa);

/// tr(I + J) = sum_j (1 - D_jj) + sum_k |u_k|^2 (for s_k = 1: abar_t times the posterior variance
/// of the mean, THEORY.md).
double trace_i_plus_j(const JacobianAt& j);

/// ||J||_op, the largest |eigenvalue| (J is symmetric). Isotropic: from the K x K eigenvalues of M;
/// diagonal: a dense d x d eigenproblem (throws gmmdiff::Error for d > 1024).
double op_norm(const JacobianAt& j);

/// y = J x [d] for the factored J, in O(K d) (J = -D + sum_k u_k u_k^T).
void apply_jacobian(const JacobianAt& j, const double* x, double* y);

/// The smallest and largest eigenvalues of a symmetric n x n operator given by its product,
/// by Lanczos with full reorthogonalisation from a fixed start vector (the same figures on every
/// run): it stops when both extreme Ritz values have residual bounds below tol times the operator's
/// scale, when the Krylov space is invariant (exact), or after n iterations (exact up to rounding).
struct ExtremeEigen {
  double lo = 0, hi = 0;
  int iterations = 0;
};
ExtremeEigen lanczos_extremes(const std::function<void(const double*, double*)>& matvec, int n, double tol = 1e-11);

/// ||J||_op by lanczos_extremes: on J's factored product (O(K d) per iteration) for K <= d, else
/// on J formed as a dense d x d matrix once (d <= 512; O(K d^2), then O(d^2) per iteration), no
/// eigenproblem of size d or K: the fast route of measurements over many points. op_norm is the
/// exact one.
double op_norm_lanczos(const JacobianAt& j, double tol = 1e-11);

/// ||J_a - J_b||_op of two factored Jacobians at the same point (eps_Jacobi of a perturbed score),
/// dense as op_norm_lanczos once K_a + K_b > d. tol as lanczos_extremes': the result is within tol
/// x the spectrum's scale of the exact norm.
double op_norm_difference(const JacobianAt& ja, const JacobianAt& jb, double tol = 1e-11);

/// J as a dense d x d matrix (row-major; tests and small d).
std::vector<double> dense_jacobian(const JacobianAt& j);

/// Eigenvalues of the symmetric n x n matrix A (row-major), ascending, by cyclic Jacobi rotations
/// (to full double accuracy; O(n^3) per sweep, a few sweeps).
std::vector<double> symmetric_eigenvalues(std::vector<double> A, int n);

}  // namespace gmmdiff::bounds
