// gmmdiff (sweep): a sweep over the ranks of an MPI job (docs/scale.md). Rank 0 holds the output
// directory and is its one writer; it hands the next run still to do to whichever rank is free
// (itself included: a thread of rank 0 runs runs too), so slow runs do not stall the others, and
// appends each row to results.jsonl as it arrives, in completion order. Resume, lock and kill -9
// behave as in one process: a killed rank ends the job (the launcher stops the others), and the
// next run, with any number of ranks, does every run without a row once.
#pragma once
#include "dist/comm.hpp"
#include "gmmdiff/sweep.hpp"

namespace gmmdiff {

/// run_sweep over the ranks of comm (collective; with one rank, run_sweep itself). Every rank
/// passes the same spec (checked: a rank that expanded another sweep, e.g. because a model file
/// differs on its machine, is an error before anything runs). Rank 0 returns the outcome and
/// calls the callbacks (on_note, on_row; not on_start or on_progress, as several runs go at
/// once); the other ranks return an empty outcome. A run that fails on any rank stops the
/// handing out, lets the runs under way finish and record their rows, and ends every rank with
/// that error (dist::JobFailure, reported by rank 0).
SweepOutcome run_sweep(const SweepSpec& spec, const SweepRunOptions& opt, const SweepCallbacks& cb, dist::Comm& comm);

}  // namespace gmmdiff
