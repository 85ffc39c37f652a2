// Metrics and progress files (report.hpp); model files are model.cpp.
#include "dsaga/report.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "strings.hpp"

namespace dsaga {

namespace {

std::string number(double v) {
  if (std::isnan(v)) return "nan";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string json_number(double v) { return std::isfinite(v) ? number(v) : "null"; }

// A validation count: unknown (not zero) in a round without counts.
std::string count(std::uint64_t n, std::uint64_t examples) {
  return examples > 0 ? std::to_string(n) : "nan";
}
std::string json_count(std::uint64_t n, std::uint64_t examples) {
  return examples > 0 ? std::to_string(n) : "null";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b < 1e3) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else if (b < 1e6) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else if (b < 1e9) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  return buf;
}

double per_agent(const TrafficCounters& t, int agents) {
  return agents > 0 ? static_cast<double>(t.bytes_in + t.bytes_out) / agents : 0.0;
}

}  // namespace

MetricsWriter::MetricsWriter(std::FILE* file, bool json, std::string path)
    : file_(file), json_(json), path_(std::move(path)) {}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

Result<std::unique_ptr<MetricsWriter>> MetricsWriter::open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr)
    return Result<std::unique_ptr<MetricsWriter>>::failure(path + ": cannot write metrics: " +
                                                           std::strerror(errno));
  const bool json = ends_with(path, ".jsonl") || ends_with(path, ".json");
  std::unique_ptr<MetricsWriter> writer(new MetricsWriter(file, json, path));
  if (!json) {
    std::fputs(
        "round,agents,participants,objective,suboptimality,invariant_error,round_seconds,"
        "elapsed_seconds,local_steps,late_updates,bytes_in,bytes_out,bytes_per_agent,updates,"
        "stale_dropped,step_scale,reverted,gradient_norm,val_examples,val_correct,val_loss,"
        "val_accuracy,val_auc,val_auc_error,mode,kind,cg_steps,up_deltas,up_coarse,up_newton,"
        "up_setup,down_broadcast,down_newton,down_setup\n",
        file);
    std::fflush(file);
  }
  return writer;
}

Status MetricsWriter::write(const RoundReport& r, const TrafficCounters& t, double elapsed) {
  const ValidationFigures& v = r.validation;
  std::ostringstream line;
  if (json_) {
    line << "{\"round\":" << r.round << ",\"agents\":" << r.agents
         << ",\"participants\":" << r.participants << ",\"objective\":" << json_number(r.objective)
         << ",\"suboptimality\":" << json_number(r.suboptimality)
         << ",\"invariant_error\":" << json_number(r.invariant_error)
         << ",\"round_seconds\":" << json_number(r.seconds)
         << ",\"elapsed_seconds\":" << json_number(elapsed) << ",\"local_steps\":" << r.local_steps
         << ",\"late_updates\":" << r.late_updates << ",\"bytes_in\":" << t.bytes_in
         << ",\"bytes_out\":" << t.bytes_out
         << ",\"bytes_per_agent\":" << json_number(per_agent(t, r.agents))
         << ",\"updates\":" << r.updates << ",\"stale_dropped\":" << r.stale_dropped
         << ",\"step_scale\":" << json_number(r.step_scale)
         << ",\"reverted\":" << (r.reverted ? "true" : "false")
         << ",\"gradient_norm\":" << json_number(r.gradient_norm)
         << ",\"val_examples\":" << json_count(v.examples, v.examples)
         << ",\"val_correct\":" << json_count(v.correct, v.examples)
         << ",\"val_loss\":" << json_number(v.loss)
         << ",\"val_accuracy\":" << json_number(v.accuracy)
         << ",\"val_auc\":" << json_number(v.auc)
         << ",\"val_auc_error\":" << json_number(v.auc_error) << ",\"mode\":\""
         << to_string(r.mode) << "\",\"kind\":\"" << msg::to_string(r.kind)
         << "\",\"cg_steps\":" << r.cg_steps << ",\"up_deltas\":" << r.parts_up.deltas
         << ",\"up_coarse\":" << r.parts_up.coarse << ",\"up_newton\":" << r.parts_up.newton
         << ",\"up_setup\":" << r.parts_up.setup
         << ",\"down_broadcast\":" << r.parts_down.broadcast
         << ",\"down_newton\":" << r.parts_down.newton
         << ",\"down_setup\":" << r.parts_down.setup << "}\n";
  } else {
    line << r.round << ',' << r.agents << ',' << r.participants << ',' << number(r.objective)
         << ',' << number(r.suboptimality) << ',' << number(r.invariant_error) << ','
         << number(r.seconds) << ',' << number(elapsed) << ',' << r.local_steps << ','
         << r.late_updates << ',' << t.bytes_in << ',' << t.bytes_out << ','
         << number(per_agent(t, r.agents)) << ',' << r.updates << ',' << r.stale_dropped << ','
         << number(r.step_scale) << ',' << (r.reverted ? 1 : 0) << ','
         << number(r.gradient_norm) << ',' << count(v.examples, v.examples) << ','
         << count(v.correct, v.examples) << ',' << number(v.loss) << ',' << number(v.accuracy)
         << ',' << number(v.auc) << ',' << number(v.auc_error) << ',' << to_string(r.mode) << ','
         << msg::to_string(r.kind) << ',' << r.cg_steps << ',' << r.parts_up.deltas << ','
         << r.parts_up.coarse << ',' << r.parts_up.newton << ',' << r.parts_up.setup << ','
         << r.parts_down.broadcast << ',' << r.parts_down.newton << ',' << r.parts_down.setup
         << '\n';
  }
  const std::string s = line.str();
  if (std::fwrite(s.data(), 1, s.size(), file_) != s.size() || std::fflush(file_) != 0)
    return Status::error(path_ + ": cannot write metrics: " + std::strerror(errno));
  return Status::ok();
}

std::string progress_line(const RoundReport& r, std::uint64_t max_rounds, double target,
                          const TrafficCounters& traffic) {
  // The bar measures progress in rounds, or towards the target in log-suboptimality when that
  // is further along (training stops at whichever comes first).
  double fraction = max_rounds > 0 ? static_cast<double>(r.round) / max_rounds : 0.0;
  if (target > 0 && std::isfinite(r.suboptimality) && r.suboptimality > 0)
    fraction = std::max(fraction, std::min(1.0, std::log10(1.0 / r.suboptimality) /
                                                    std::log10(1.0 / target)));
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int width = 20;
  const int filled = static_cast<int>(std::lround(fraction * width));
  char buf[256];
  // Newton-CG's product rounds (one CG step each) measure no F.
  const std::string measured =
      r.kind == msg::RoundKind::product
          ? cat("newton-cg CG step ", r.cg_steps)
          : (std::snprintf(buf, sizeof buf, "F=%.10f (F-F*)/F*=%.3e", r.objective, r.suboptimality),
             std::string(buf));
  std::snprintf(buf, sizeof buf, "round %4llu/%llu [%s%s] %s inv=%.1e %.2f s %s/agent",
                static_cast<unsigned long long>(r.round),
                static_cast<unsigned long long>(max_rounds), std::string(filled, '#').c_str(),
                std::string(width - filled, '.').c_str(), measured.c_str(), r.invariant_error,
                r.seconds, human_bytes(per_agent(traffic, r.agents)).c_str());
  std::string line = buf;
  // Where the bytes went, by part of the protocol (both directions, per agent, so far).
  if (r.agents > 0) {
    std::string parts;
    const auto part = [&](const char* name, std::uint64_t bytes) {
      if (bytes == 0) return;
      parts += cat(parts.empty() ? "" : ", ", name, " ",
                   human_bytes(static_cast<double>(bytes) / r.agents));
    };
    part("deltas", r.parts_up.deltas);
    part("coarse", r.parts_up.coarse);
    part("broadcast", r.parts_down.broadcast);
    part("newton", r.parts_up.newton + r.parts_down.newton);
    part("setup", r.parts_up.setup + r.parts_down.setup);
    if (!parts.empty()) line += " (" + parts + ")";
  }
  if (r.kind == msg::RoundKind::gradient) line += " newton-cg gradient";
  // Two-level's guard, when it acts: the step it left and whether it went back a round.
  if (r.reverted) line += " guard: F rose, step back";
  if (r.step_scale < 1.0) {
    std::snprintf(buf, sizeof buf, " step x%.3g", r.step_scale);
    line += buf;
  }
  // What shows progress without F*: the gradient norm where known, the held-out figures.
  if (std::isfinite(r.gradient_norm)) {
    std::snprintf(buf, sizeof buf, " |g|=%.2e", r.gradient_norm);
    line += buf;
  }
  const ValidationFigures& v = r.validation;
  if (v.examples > 0) {
    std::snprintf(buf, sizeof buf, " val: loss=%.6f", v.loss);
    line += buf;
    if (std::isfinite(v.accuracy)) {
      std::snprintf(buf, sizeof buf, " acc=%.4f", v.accuracy);
      line += buf;
    }
    if (std::isfinite(v.auc)) {
      std::snprintf(buf, sizeof buf, " auc=%.4f", v.auc);
      line += buf;
    }
    std::snprintf(buf, sizeof buf, " (%llu rows)", static_cast<unsigned long long>(v.examples));
    line += buf;
  }
  return line;
}

}  // namespace dsaga
