// The zoo's architecture builders (internal to models/zoo). Each appends its network to a
// GraphBuilder: inputs, nodes, initialisers and outputs, named as PyTorch's exporter names them.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "models/zoo/graph_builder.h"

namespace ps::zoo {

// torchvision.models.ResNet (v1.5: the stride sits on the 3x3 convolution).
struct ResNetConfig {
  bool bottleneck = false;              // Bottleneck (expansion 4) instead of BasicBlock
  std::array<int, 4> blocks{2, 2, 2, 2};  // blocks per stage layer1..layer4
  int width = 64;                       // stem channels; stage planes are width * 1, 2, 4, 8
  int image_size = 224;
  int num_classes = 1000;
};
void build_resnet(const ResNetConfig& config, GraphBuilder& b);

// torchvision.models.Inception3 in eval mode: no auxiliary head, transform_input=False.
struct InceptionConfig {
  enum class Kind : char { kA = 'A', kB = 'B', kC = 'C', kD = 'D', kE = 'E' };
  struct Block {
    std::string name;  // "Mixed_5b"
    Kind kind;
    int option = 0;    // A: pool_features; C: channels_7x7 (both before dividing)
  };
  int divisor = 1;     // every channel count is divided by this (tiny configurations)
  std::vector<Block> blocks;
  int image_size = 299;
  int num_classes = 1000;
};
InceptionConfig inception_v3_config();
void build_inception(const InceptionConfig& config, GraphBuilder& b);

// transformers.BertModel with absolute position embeddings, eval mode, no attention mask.
struct BertConfig {
  int vocab_size = 28996;
  int hidden = 768;
  int layers = 12;
  int heads = 12;
  int intermediate = 3072;
  int max_positions = 512;
  int type_vocab_size = 2;
  float layer_norm_eps = 1e-12f;
  // 0: BertModel (outputs last_hidden_state and pooler_output). N > 0:
  // BertForSequenceClassification with N labels: the same model under `bert.`, then
  // `classifier` Linear(hidden, N) on pooler_output (its dropout is the identity at export);
  // the only output is `logits` [batch, N]. The zoo's training graph of a BERT model.
  int num_labels = 0;
};
void build_bert(const BertConfig& config, int opset, GraphBuilder& b);

}  // namespace ps::zoo
