#include "train/metrics_log.h"

#include <cmath>

#include "reformer/error.h"
#include "reformer/memory.h"

namespace reformer {
namespace {

// The lines of an existing log that a run resumed at `resume_step` keeps.
std::string kept_lines(const std::string& path, int64_t resume_step) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.contains("step") && record["step"].is_number_integer() &&
        record["step"].get<int64_t>() <= resume_step)
      kept += line + "\n";
  }
  return kept;
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, std::optional<int64_t> resume_step) : path_(path) {
  const std::string kept = resume_step ? kept_lines(path, *resume_step) : std::string();
  out_.open(path, std::ios::out | std::ios::trunc);
  REFORMER_CHECK(out_.is_open(), "cannot write the metrics log '", path,
                 "'; check that its directory exists and is writable, or pass another path");
  out_ << kept;
  out_.flush();
}

void MetricsLog::write(const nlohmann::json& record) {
  REFORMER_CHECK(record.is_object(), "a metrics record must be a JSON object, got ", record.dump());
  out_ << record.dump() << '\n';
  out_.flush();
  REFORMER_CHECK(out_.good(), "writing the metrics log '", path_, "' failed (disk full?)");
}

nlohmann::json step_record(int64_t step, double loss, double lr, double tokens_per_s, double wall_s) {
  const MemStats mem = mem_stats();
  return {{"step", step},
          {"loss", loss},
          {"bits_per_byte", loss / std::log(2.0)},
          {"lr", lr},
          {"tokens_per_s", tokens_per_s},
          {"wall_s", wall_s},
          {"peak_bytes", mem.peak_total},
          {"peak_rss_bytes", process_peak_rss_bytes()}};
}

}  // namespace reformer
