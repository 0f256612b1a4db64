#pragma once
// Training metrics as JSON lines: one object per line, flushed as soon as it is written, so a crashed
// run loses nothing and `tail -f` shows progress.
//
// A fresh run truncates the file. A run resumed from the checkpoint of step s keeps the records with
// "step" <= s (dropping those the resumed run will write again, and a half-written last line) and
// appends after them.
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace reformer {

class MetricsLog {
 public:
  // resume_step: nullopt for a fresh run.
  MetricsLog(const std::string& path, std::optional<int64_t> resume_step);

  // record must be a JSON object.
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// The standard training record: step, loss (mean cross-entropy in nats per scored token),
// bits_per_byte (the loss in bits; per byte for byte-level data), lr, tokens_per_s, wall_s, and the
// allocator's peak bytes plus the process's peak RSS. Callers add anything else (split, grad_norm).
nlohmann::json step_record(int64_t step, double loss, double lr, double tokens_per_s, double wall_s);

}  // namespace reformer
