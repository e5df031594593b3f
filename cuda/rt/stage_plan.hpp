// gmmdiff: the order of a double-buffered staged copy between a chunk in device memory and the
// host, with no CUDA types (the tests run it with fakes): the chunk moves in pieces of whole rows
// through two pinned host buffers ("slots") of kStageBytes each, so that the copy engine works on
// one piece while the host works on the other, and the host memory used is 2 x kStageBytes
// whatever the chunk's size.
#pragma once
#include <algorithm>
#include <cstddef>

namespace gmmdiff::gpu {

/// Bytes of one staging slot (two are used). 32 MiB is about a millisecond of PCIe 5 x16 per
/// piece: large enough that the per-piece synchronisation costs nothing, small enough to pin.
constexpr std::size_t kStageBytes = std::size_t{32} << 20;

/// Rows per piece: as many whole rows of row_bytes as fit in stage_bytes (at least 1; a slot is
/// then sized max(stage_bytes, row_bytes)).
inline std::size_t stage_piece_rows(std::size_t row_bytes, std::size_t stage_bytes = kStageBytes) {
  return std::max<std::size_t>(1, stage_bytes / std::max<std::size_t>(row_bytes, 1));
}

/// Device to host. issue(slot, row0, rows) queues the copy of rows row0 .. row0 + rows - 1 into
/// slot (0 or 1) and returns at once; finish(slot, row0, rows) waits for that copy and hands the
/// piece on. Piece p + 1 is issued before piece p is finished, so its copy overlaps the host's
/// work on piece p; a slot is issued again only after its previous piece was finished.
template <typename Issue, typename Finish>
void staged_download(std::size_t rows, std::size_t piece_rows, Issue&& issue, Finish&& finish) {
  std::size_t prev_r0 = 0, prev_n = 0;
  int slot = 0;
  for (std::size_t r0 = 0; r0 < rows; r0 += piece_rows) {
    const std::size_t n = std::min(piece_rows, rows - r0);
    issue(slot, r0, n);
    if (prev_n > 0) finish(1 - slot, prev_r0, prev_n);
    prev_r0 = r0;
    prev_n = n;
    slot = 1 - slot;
  }
  if (prev_n > 0) finish(1 - slot, prev_r0, prev_n);
}

/// Host to device. wait(slot) blocks until the copy last issued from slot (if any) is done;
/// fill_issue(slot, row0, rows) writes rows row0 .. row0 + rows - 1 into slot and queues their copy
/// to the device. The host fills one slot while the other's copy runs.
template <typename Wait, typename FillIssue>
void staged_upload(std::size_t rows, std::size_t piece_rows, Wait&& wait, FillIssue&& fill_issue) {
  int slot = 0;
  for (std::size_t r0 = 0; r0 < rows; r0 += piece_rows) {
    const std::size_t n = std::min(piece_rows, rows - r0);
    wait(slot);
    fill_issue(slot, r0, n);
    slot = 1 - slot;
  }
}

}  // namespace gmmdiff::gpu
