#pragma once
// Fine-tuning from a checkpoint (TrainArgs::init_from): the checkpoint's config as the task uses it,
// which of its fields a run may change, and whether its head is loaded too.
#include <string>

#include "reformer/config.h"
#include "reformer/train.h"
#include "train/classify_data.h"
#include "train/progress.h"

namespace reformer {

// Whether config field `key` may differ from the init_from checkpoint's (changeable_on_init()).
bool may_change_on_init(const std::string& key);
// The init_from checkpoint's config as `a.task` uses it: the task's head and attention direction
// (a note on `progress` when the direction changes). `train`: the classification data, if any.
ReformerConfig config_for_task(ReformerConfig c, const TrainArgs& a, const ClassificationData* train, Progress& progress);
// Whether the init_from checkpoint's head fits the fine-tuning model's (then it is loaded too).
bool same_head(const ReformerConfig& from, const ReformerConfig& to);

}  // namespace reformer
