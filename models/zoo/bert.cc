// Hugging Face BertModel (eval mode, absolute positions, no attention mask input: the mask is
// all ones, so its additive term is zero and is left out) as PyTorch's exporter writes it.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "models/zoo/builders.h"

namespace ps::zoo {
namespace {

// HF _init_weights: Linear and Embedding weights N(0, initializer_range = 0.02); LayerNorm
// gamma 1, beta 0. Biases: HF zeroes them; we draw them from the same N(0, 0.02) so that the
// importer's and the executors' bias paths are exercised with values that matter.
constexpr double kInitStd = 0.02;

class Builder {
 public:
  Builder(const BertConfig& config, int opset, GraphBuilder& b) : config_(config), opset_(opset), b_(b) {}

  // nn.Linear on a 3-D input: MatMul with the exporter's transposed weight, then Add(bias, y).
  std::string linear(std::string_view attr, const std::string& x, int in, int out) {
    auto scope = b_.module(attr);
    std::string w = b_.anonymous_param("MatMul", b_.param_name("weight"), {in, out}, Init::normal(0.0, kInitStd));
    std::string bias = b_.param("bias", {out}, Init::normal(0.0, kInitStd));
    std::string y = b_.op("MatMul", {x, w});
    return b_.op("Add", {bias, y});
  }

  // nn.LayerNorm(hidden, eps) over the last axis: LayerNormalization from opset 17, else the
  // exporter's decomposition ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add.
  std::string layer_norm(const std::string& x) {
    auto scope = b_.module("LayerNorm");
    std::string gamma = b_.param("weight", {config_.hidden}, Init::constant(1.0));
    std::string beta = b_.param("bias", {config_.hidden}, Init::constant(0.0));
    if (opset_ >= 17) {
      return b_.op("LayerNormalization", {x, gamma, beta},
                   {attr_int("axis", -1), attr_float("epsilon", config_.layer_norm_eps)});
    }
    std::string mean = b_.op("ReduceMean", {x}, {attr_ints("axes", {-1})});
    std::string centred = b_.op("Sub", {x, mean});
    std::string two = b_.constant_float(2.0f);
    std::string squared = b_.op("Pow", {centred, two});
    std::string var = b_.op("ReduceMean", {squared}, {attr_ints("axes", {-1})});
    std::string eps = b_.constant_float(config_.layer_norm_eps);
    std::string shifted = b_.op("Add", {var, eps});
    std::string stddev = b_.op("Sqrt", {shifted});
    std::string normed = b_.op("Div", {centred, stddev});
    std::string scaled = b_.op("Mul", {normed, gamma});
    return b_.op("Add", {scaled, beta});
  }

  // nn.GELU / ACT2FN["gelu"] (erf form): x * 0.5 * (1 + erf(x / sqrt(2))), as exported.
  std::string gelu(const std::string& x) {
    auto scope = b_.module("intermediate_act_fn");
    std::string root2 = b_.constant_float(static_cast<float>(std::sqrt(2.0)));
    std::string scaled = b_.op("Div", {x, root2});
    std::string erf = b_.op("Erf", {scaled});
    std::string one = b_.constant_float(1.0f);
    std::string shifted = b_.op("Add", {erf, one});
    std::string product = b_.op("Mul", {x, shifted});
    std::string half = b_.constant_float(0.5f);
    return b_.op("Mul", {product, half});
  }

  std::string embeddings(const std::string& input_ids, const std::string& token_type_ids) {
    auto scope = b_.module("embeddings");
    const int h = config_.hidden;
    // Buffer position_ids = arange(max_positions)[None], sliced to the sequence length.
    std::vector<int64_t> positions(config_.max_positions);
    std::iota(positions.begin(), positions.end(), int64_t{0});
    std::string position_ids = b_.int64_buffer("position_ids", {1, config_.max_positions}, positions);
    std::string shape = b_.op("Shape", {input_ids});
    std::string seq = b_.op("Gather", {shape, b_.constant_int64(1)}, {attr_int("axis", 0)});
    std::string seq_end = b_.op("Unsqueeze", {seq, b_.constant_int64s({0})});
    std::string starts = b_.constant_int64s({0});
    std::string axes = b_.constant_int64s({1});
    std::string steps = b_.constant_int64s({1});
    std::string positions_used = b_.op("Slice", {position_ids, starts, seq_end, axes, steps});
    // libonnx 1.12 infers nothing through a Slice with computed ends; the exporter records the
    // shape it knows, and so do we, so that shape inference reaches the outputs.
    b_.add_value_info(positions_used, onnx::TensorProto::INT64, {1, "seq"});

    std::string words, types, places;
    {
      auto emb = b_.module("word_embeddings");
      std::string w = b_.param("weight", {config_.vocab_size, h}, Init::normal(0.0, kInitStd));
      // padding_idx = pad_token_id = 0: HF zeroes that row.
      std::span<float> data = b_.float_data(w);
      std::fill(data.begin(), data.begin() + std::min<size_t>(data.size(), h), 0.0f);
      words = b_.op("Gather", {w, input_ids});
    }
    {
      auto emb = b_.module("token_type_embeddings");
      std::string w = b_.param("weight", {config_.type_vocab_size, h}, Init::normal(0.0, kInitStd));
      types = b_.op("Gather", {w, token_type_ids});
    }
    std::string sum = b_.op("Add", {words, types});
    {
      auto emb = b_.module("position_embeddings");
      std::string w = b_.param("weight", {config_.max_positions, h}, Init::normal(0.0, kInitStd));
      places = b_.op("Gather", {w, positions_used});
    }
    sum = b_.op("Add", {sum, places});
    return layer_norm(sum);  // dropout: identity in eval
  }

  // BertSelfAttention: the query/key/value projections are reshaped to
  // [batch, seq, heads, head_size] with a constant shape (0 = keep that dim) and transposed;
  // the exporter fuses key's two transposes into one perm [0, 2, 3, 1].
  std::string self_attention(const std::string& x) {
    auto scope = b_.module("self");
    const int h = config_.hidden;
    const int head_size = h / config_.heads;
    std::string query = linear("query", x, h, h);
    std::string key = linear("key", x, h, h);
    key = b_.op("Reshape", {key, b_.constant_int64s({0, 0, config_.heads, head_size})});
    key = b_.op("Transpose", {key}, {attr_ints("perm", {0, 2, 3, 1})});
    std::string value = linear("value", x, h, h);
    value = b_.op("Reshape", {value, b_.constant_int64s({0, 0, config_.heads, head_size})});
    value = b_.op("Transpose", {value}, {attr_ints("perm", {0, 2, 1, 3})});
    query = b_.op("Reshape", {query, b_.constant_int64s({0, 0, config_.heads, head_size})});
    query = b_.op("Transpose", {query}, {attr_ints("perm", {0, 2, 1, 3})});
    std::string scores = b_.op("MatMul", {query, key});
    scores = b_.op("Div", {scores, b_.constant_float(static_cast<float>(std::sqrt(head_size)))});
    std::string probs = b_.op("Softmax", {scores}, {attr_int("axis", -1)});
    std::string context = b_.op("MatMul", {probs, value});
    context = b_.op("Transpose", {context}, {attr_ints("perm", {0, 2, 1, 3})});
    return b_.op("Reshape", {context, b_.constant_int64s({0, 0, h})});
  }

  // BertSelfOutput / BertOutput: dense, then LayerNorm(hidden + residual).
  std::string output(std::string_view attr, const std::string& x, const std::string& residual, int in) {
    auto scope = b_.module(attr);
    std::string y = linear("dense", x, in, config_.hidden);
    y = b_.op("Add", {y, residual});
    return layer_norm(y);
  }

  std::string layer(const std::string& x) {
    std::string attention;
    {
      auto scope = b_.module("attention");
      std::string context = self_attention(x);
      attention = output("output", context, x, config_.hidden);
    }
    std::string inner;
    {
      auto scope = b_.module("intermediate");
      inner = linear("dense", attention, config_.hidden, config_.intermediate);
      inner = gelu(inner);
    }
    return output("output", inner, attention, config_.intermediate);
  }

  void build() {
    b_.add_input("input_ids", onnx::TensorProto::INT64, {"batch", "seq"});
    b_.add_input("token_type_ids", onnx::TensorProto::INT64, {"batch", "seq"});
    if (config_.num_labels == 0) {
      const std::string pooled = bert_model();
      b_.add_output("last_hidden_state", onnx::TensorProto::FLOAT, {"batch", "seq", config_.hidden});
      b_.add_output("pooler_output", onnx::TensorProto::FLOAT, {"batch", config_.hidden});
      return;
    }
    // BertForSequenceClassification: BertModel as `bert`, dropout (identity), then the
    // classifier; HF returns the logits only, and last_hidden_state is left unused.
    std::string pooled;
    {
      auto scope = b_.module("bert");
      pooled = bert_model();
    }
    std::string logits;
    {
      auto scope = b_.module("classifier");
      std::string w = b_.param("weight", {config_.num_labels, config_.hidden}, Init::normal(0.0, kInitStd));
      std::string bias = b_.param("bias", {config_.num_labels}, Init::normal(0.0, kInitStd));
      logits = b_.op("Gemm", {pooled, w, bias},
                     {attr_float("alpha", 1.0f), attr_float("beta", 1.0f), attr_int("transB", 1)});
    }
    b_.rename_value(logits, "logits");
    b_.add_output("logits", onnx::TensorProto::FLOAT, {"batch", config_.num_labels});
  }

  // BertModel from the inputs to pooler_output (returned; last_hidden_state is named).
  std::string bert_model() {
    std::string x = embeddings("input_ids", "token_type_ids");
    {
      auto scope = b_.module("encoder");
      for (int i = 0; i < config_.layers; ++i) {
        auto item = b_.list_item("layer", i);
        x = layer(x);
      }
    }
    b_.rename_value(x, "last_hidden_state");
    x = "last_hidden_state";
    std::string pooled;
    {
      // BertPooler: hidden_states[:, 0] -> Linear (2-D input: Gemm) -> Tanh.
      auto scope = b_.module("pooler");
      std::string first = b_.op("Gather", {x, b_.constant_int64(0)}, {attr_int("axis", 1)});
      {
        auto dense = b_.module("dense");
        const int h = config_.hidden;
        std::string w = b_.param("weight", {h, h}, Init::normal(0.0, kInitStd));
        std::string bias = b_.param("bias", {h}, Init::normal(0.0, kInitStd));
        pooled = b_.op("Gemm", {first, w, bias},
                       {attr_float("alpha", 1.0f), attr_float("beta", 1.0f), attr_int("transB", 1)});
      }
      auto activation = b_.module("activation");
      pooled = b_.op("Tanh", {pooled});
    }
    b_.rename_value(pooled, "pooler_output");
    return "pooler_output";
  }

 private:
  const BertConfig& config_;
  int opset_;
  GraphBuilder& b_;
};

}  // namespace

void build_bert(const BertConfig& config, int opset, GraphBuilder& b) { Builder(config, opset, b).build(); }

}  // namespace ps::zoo
