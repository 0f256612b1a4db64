// Built like the CLI (include/ only, no src/): every public header must compile on its own, so a
// front end can use any of them, and none may reach into src/. Keep the list complete
// (CMake checks that every include/reformer/*.h is named here).
#include "reformer/attention_kinds.h"
#include "reformer/bytes.h"
#include "reformer/checkpoint.h"
#include "reformer/config.h"
#include "reformer/decode.h"
#include "reformer/error.h"
#include "reformer/evaluate.h"
#include "reformer/generate.h"
#include "reformer/limits.h"
#include "reformer/memory.h"
#include "reformer/memory_estimate.h"
#include "reformer/model.h"
#include "reformer/parameters.h"
#include "reformer/precision.h"
#include "reformer/rng.h"
#include "reformer/safetensors.h"
#include "reformer/sampling.h"
#include "reformer/tensor.h"
#include "reformer/threads.h"
#include "reformer/tokenizer.h"
#include "reformer/train.h"

int main() { return 0; }
