// What the hub writes for people and other tools: per-round metrics (CSV or JSON lines), a
// progress line, and the trained model as plain text. Files that must survive a crash are
// written with write_file_atomic (files.hpp).
#pragma once

#include <Eigen/Dense>

#include <cstdio>
#include <memory>
#include <string>

#include "dsaga/hub.hpp"
#include "dsaga/model.hpp"  // save_model: the trained model as a file
#include "dsaga/objective.hpp"
#include "dsaga/status.hpp"
#include "dsaga/transport.hpp"

namespace dsaga {

// Columns: round, agents, participants, objective, suboptimality, invariant_error,
// round_seconds, elapsed_seconds, local_steps, late_updates, bytes_in, bytes_out,
// bytes_per_agent (cumulative bytes_in + bytes_out over admitted agents), updates,
// stale_dropped, step_scale, reverted, and (appended for issue 16, so earlier columns keep their
// numbers) gradient_norm, val_examples, val_correct, val_loss, val_accuracy, val_auc,
// val_auc_error (RoundReport; validation.hpp). NaN is written as "nan" (CSV) or null (JSON); a
// round without validation counts has every val_ column unknown, not zero. Every line is
// flushed, so a crash loses at most the line in hand.
class MetricsWriter {
 public:
  // *.jsonl / *.json: JSON lines; anything else: CSV with a header line.
  static Result<std::unique_ptr<MetricsWriter>> open(const std::string& path);
  ~MetricsWriter();
  Status write(const RoundReport& report, const TrafficCounters& traffic, double elapsed);

 private:
  MetricsWriter(std::FILE* file, bool json, std::string path);
  std::FILE* file_;
  bool json_;
  std::string path_;
};

// "round  12/300 [#######.......] F=0.31234567 (F-F*)/F*=1.2e-04 inv=3e-17 0.21 s 1.2 MB/agent"
std::string progress_line(const RoundReport& report, std::uint64_t max_rounds, double target,
                          const TrafficCounters& traffic);

}  // namespace dsaga
