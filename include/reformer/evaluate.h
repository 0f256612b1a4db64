#pragma once
// Evaluation of a model, exactly as `reformer eval` runs it (the CLI and Python both call
// evaluate() below): mean loss, bits per byte and next-token accuracy over consecutive windows
// of a data split or a whole file (dropout off, reproducible rotations), or over fresh copy-task
// sequences. With `incremental`, the same windows are scored token by token through incremental
// decoding (reformer/decode.h), to show what the decoding cache costs against the full forward.
#include <cstdint>
#include <string>

#include "reformer/model.h"
#include "reformer/precision.h"
#include "reformer/train.h"

namespace reformer {

struct EvalRequest {
  std::string data = kDefaultData;  // split 90/5/5 as in training
  std::string file;                 // evaluate this whole file instead of a split of `data`
  std::string split = "validation";  // train, validation or test
  std::string task = "lm";          // lm (text) or copy (fresh copy-task sequences)
  // The text's tokenizer: this spiece.model when given, else model_dir/spiece.model when the model's
  // directory holds one, else bytes (reformer/tokenizer.h). Its vocabulary must be the model's.
  std::string tokenizer;
  std::string model_dir;
  int64_t seq_len = 0;              // window length in tokens, any length (padded to the chunk multiple); 0 = the model's max_length()
  int64_t batch = 1;                // windows per forward pass
  int64_t max_windows = 0;          // only the first N windows (copy: sequences); 0 = all (copy: 4 batches)
  int64_t num_hashes = 0;           // LSH hash rounds for this evaluation; 0 = the model's
  uint64_t seed = 0;                // LSH rotations
  bool incremental = false;
  int threads = 0;                  // 0 = OMP_NUM_THREADS or all cores
  Precision precision = Precision::fp32;  // of the matrix products (reformer/precision.h)
};

struct EvalResult {
  LossStats stats;       // summed loss, scored tokens, correct next-token predictions
  std::string source;    // "validation split of FILE", "FILE", "copy task"
  int64_t length = 0;    // window length used
  double loss = 0;       // mean loss (nats per token)
  double bits_per_byte = 0;  // summed loss / (ln 2 x the text bytes of the scored tokens)
  double accuracy = 0;
};

// Throws reformer::Error naming the bad option. A num_hashes given here holds for this call only.
EvalResult evaluate(ReformerModel& model, const EvalRequest& request);

// Bits per byte of a byte-level mean loss in nats.
double bits_per_byte(double mean_loss);
// Bits per byte of a text evaluation: the summed loss over the bytes of text its tokens stand for
// (docs/NUMERICS.md), whatever the tokenizer; the mean loss per token when the bytes are not known.
double bits_per_byte(const LossStats& s);

}  // namespace reformer
