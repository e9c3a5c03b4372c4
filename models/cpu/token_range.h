// The values an integer model input can take when it holds token ids: the number of rows of
// the embedding table it indexes. Used for synthetic requests (reactor/model_source.cc) and
// for the trainer's token data (trainer.cc).
#pragma once

#include <cstdint>

#include "onnx_loader/psm.pb.h"

namespace ps::models::cpu {

// The first dimension of the data of the first Gather with axis 0 that reads tensor `index` as
// its indices (BERT: the vocabulary for input_ids, 2 for token_type_ids); 0 when no such
// Gather exists (the input does not index a table).
int64_t token_range(const pipeswitch::psm::Manifest& manifest, uint32_t index);

}  // namespace ps::models::cpu
