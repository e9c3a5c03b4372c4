#include "onnx_loader/package_validate.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "onnx_loader/package_format.h"

namespace ps::onnx_loader {
namespace {

namespace psm = pipeswitch::psm;

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// [offset, offset + size) lies inside [0, limit); no overflow.
bool inside(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

std::string range_string(uint64_t offset, uint64_t size) {
  uint64_t end;
  if (__builtin_add_overflow(offset, size, &end)) {
    return str_cat("[", offset, ", ", offset, " + ", size, ")");
  }
  return str_cat("[", offset, ", ", end, ")");
}

// Walks the manifest once per section; each check returns the first problem found.
class Validator {
 public:
  Validator(const psm::Manifest& m, uint64_t blob_bytes, std::string_view label)
      : m_(m), blob_bytes_(blob_bytes), label_(label) {}

  Status run() {
    PS_TRY(check_top());
    PS_TRY(check_tensors());
    PS_TRY(check_layers());
    PS_TRY(check_model_io());
    PS_TRY(check_weight_overlap());
    return check_groups();
  }

 private:
  template <typename... Args>
  Status fail(const Args&... args) const {
    return corrupt(label_, ": ", args...);
  }

  std::string tensor_ref(uint32_t i) const {
    const auto& t = m_.tensors(static_cast<int>(i));
    return str_cat("tensor ", i, " '", t.name(), "'");
  }
  std::string layer_ref(int l) const {
    const auto& layer = m_.layers(l);
    return str_cat("layer ", l, " '", layer.name(), "' (", layer.op(), ")");
  }
  std::string group_ref(int g) const {
    return str_cat("group ", g, " '", m_.groups(g).label(), "'");
  }

  Status check_top() {
    if (m_.format_version() != kFormatMajor) {
      return fail("manifest format_version is ", m_.format_version(), ", expected ", kFormatMajor);
    }
    if (m_.mode() != psm::Manifest::INFERENCE && m_.mode() != psm::Manifest::TRAINING) {
      return fail("manifest mode is ", static_cast<int>(m_.mode()),
                  ", expected INFERENCE (1) or TRAINING (2)");
    }
    if (m_.weights_bytes() != blob_bytes_) {
      return fail("the manifest says the weight blob is ", m_.weights_bytes(), " bytes, but it is ",
                  blob_bytes_, " bytes");
    }
    const uint32_t wa = m_.weight_alignment();
    if (!is_power_of_two(wa) || wa < kMinWeightAlignment || wa > kMaxWeightAlignment) {
      return fail("weight_alignment ", wa, " is not a power of two in [", kMinWeightAlignment, ", ",
                  kMaxWeightAlignment, "]");
    }
    const auto& plan = m_.memory_plan();
    if (!is_power_of_two(plan.alignment()) || plan.alignment() > kMaxArenaAlignment) {
      return fail("memory_plan.alignment ", plan.alignment(), " is not a power of two in [1, ",
                  kMaxArenaAlignment, "]");
    }
    if (plan.arena_bytes() > kMaxArenaBytes) {
      return fail("memory_plan.arena_bytes ", plan.arena_bytes(), " exceeds the limit of ",
                  kMaxArenaBytes);
    }
    for (const auto& [name, value] : m_.dims()) {
      if (name.empty() || value <= 0) {
        return fail("symbolic dimension '", name, "' = ", value,
                    " (names must be non-empty, values positive)");
      }
    }
    if (m_.layers_size() == 0) return fail("the manifest has no layers");
    return Status::OK();
  }

  Status check_tensors() {
    const auto& plan = m_.memory_plan();
    bytes_.resize(m_.tensors_size());
    for (uint32_t i = 0; i < static_cast<uint32_t>(m_.tensors_size()); ++i) {
      const auto& t = m_.tensors(static_cast<int>(i));
      if (!psm::Tensor::Kind_IsValid(t.kind()) || t.kind() == psm::Tensor::KIND_UNDEFINED) {
        return fail(tensor_ref(i), " has unknown kind ", static_cast<int>(t.kind()));
      }
      const size_t elem = psm_dtype_size(t.dtype());
      if (elem == 0) {
        return fail(tensor_ref(i), " has unknown dtype ", static_cast<int>(t.dtype()));
      }
      const auto elements = checked_element_count(t);
      if (!elements) {
        return fail(tensor_ref(i), " has an invalid shape ", psm_shape_string(t),
                    " (dims must be positive, rank <= ", kMaxRank, ", at most ", kMaxElements,
                    " elements)");
      }
      const uint64_t bytes = *elements * elem;  // <= 2^40 * 8: no overflow
      bytes_[i] = bytes;
      if (t.kind() == psm::Tensor::WEIGHT) {
        if (t.byte_size() != bytes) {
          return fail(tensor_ref(i), " byte_size ", t.byte_size(), " != ", *elements,
                      " elements * ", elem, " bytes (", psm_dtype_name(t.dtype()), " ",
                      psm_shape_string(t), ")");
        }
        if (t.weight_offset() % m_.weight_alignment() != 0) {
          return fail(tensor_ref(i), " weight offset ", t.weight_offset(),
                      " is not a multiple of weight_alignment ", m_.weight_alignment());
        }
        if (!inside(t.weight_offset(), bytes, blob_bytes_)) {
          return fail(tensor_ref(i), " weight range ", range_string(t.weight_offset(), bytes),
                      " exceeds the weight blob (", blob_bytes_, " bytes)");
        }
      } else {
        if (t.byte_size() != 0 && t.byte_size() != bytes) {
          return fail(tensor_ref(i), " byte_size ", t.byte_size(), " != ", *elements,
                      " elements * ", elem, " bytes (", psm_dtype_name(t.dtype()), " ",
                      psm_shape_string(t), ")");
        }
        if (t.arena_offset() % plan.alignment() != 0) {
          return fail(tensor_ref(i), " arena offset ", t.arena_offset(),
                      " is not a multiple of memory_plan.alignment ", plan.alignment());
        }
        if (!inside(t.arena_offset(), bytes, plan.arena_bytes())) {
          return fail(tensor_ref(i), " (", psm_kind_name(t.kind()), ") arena range ",
                      range_string(t.arena_offset(), bytes), " exceeds the activation arena (",
                      plan.arena_bytes(), " bytes)");
        }
      }
    }
    return Status::OK();
  }

  Status check_index(uint32_t index, int layer, const char* role) const {
    if (index >= static_cast<uint32_t>(m_.tensors_size())) {
      return fail(layer_ref(layer), " ", role, " tensor index ", index, " is out of range (",
                  m_.tensors_size(), " tensors)");
    }
    return Status::OK();
  }

  Status check_layers() {
    produced_by_.assign(m_.tensors_size(), -1);
    first_use_.assign(m_.tensors_size(), -1);
    for (int l = 0; l < m_.layers_size(); ++l) {
      const auto& layer = m_.layers(l);
      if (layer.op().empty()) return fail(layer_ref(l), " has no operator");
      if (layer.outputs_size() == 0) return fail(layer_ref(l), " has no outputs");
      for (const auto& attr : layer.attributes()) {
        if (attr.name().empty()) return fail(layer_ref(l), " has an attribute without a name");
        if (attr.value_case() == psm::Attribute::VALUE_NOT_SET) {
          return fail(layer_ref(l), " attribute '", attr.name(), "' has no value");
        }
      }
      for (uint32_t in : layer.inputs()) {
        PS_TRY(check_index(in, l, "input"));
        const int kind = m_.tensors(static_cast<int>(in)).kind();
        if (kind == psm::Tensor::WEIGHT) {
          if (first_use_[in] < 0) first_use_[in] = l;
        } else if (kind != psm::Tensor::INPUT && produced_by_[in] < 0) {
          return fail(layer_ref(l), " reads ", tensor_ref(in), " before any layer produces it");
        }
      }
      for (uint32_t out : layer.outputs()) {
        PS_TRY(check_index(out, l, "output"));
        const int kind = m_.tensors(static_cast<int>(out)).kind();
        if (kind != psm::Tensor::ACTIVATION && kind != psm::Tensor::OUTPUT) {
          return fail(layer_ref(l), " writes ", tensor_ref(out), ", which is ", psm_kind_name(kind),
                      " (layers write only activations and outputs)");
        }
        if (produced_by_[out] >= 0) {
          return fail(tensor_ref(out), " is produced twice: by layer ", produced_by_[out],
                      " and by ", layer_ref(l));
        }
        produced_by_[out] = l;
      }
    }
    for (uint32_t i = 0; i < static_cast<uint32_t>(m_.tensors_size()); ++i) {
      const int kind = m_.tensors(static_cast<int>(i)).kind();
      if ((kind == psm::Tensor::ACTIVATION || kind == psm::Tensor::OUTPUT) && produced_by_[i] < 0) {
        return fail(tensor_ref(i), " (", psm_kind_name(kind), ") is produced by no layer");
      }
      if (kind == psm::Tensor::WEIGHT && first_use_[i] < 0) {
        return fail(tensor_ref(i), " (weight) is read by no layer");
      }
    }
    return Status::OK();
  }

  Status check_io_list(const google::protobuf::RepeatedField<uint32_t>& list, int kind,
                       const char* what, std::set<std::string>& names) const {
    if (list.empty()) return fail("the model has no ", what, "s");
    std::vector<bool> seen(m_.tensors_size(), false);
    for (uint32_t index : list) {
      if (index >= static_cast<uint32_t>(m_.tensors_size())) {
        return fail("model ", what, " tensor index ", index, " is out of range (",
                    m_.tensors_size(), " tensors)");
      }
      const auto& t = m_.tensors(static_cast<int>(index));
      if (t.kind() != kind) {
        return fail("model ", what, " ", tensor_ref(index), " is ", psm_kind_name(t.kind()),
                    ", not ", what);
      }
      if (seen[index]) return fail("model ", what, " ", tensor_ref(index), " is listed twice");
      seen[index] = true;
      if (t.name().empty()) return fail("model ", what, " tensor ", index, " has no name");
      if (!names.insert(t.name()).second) {
        return fail("the name '", t.name(), "' is used by more than one model input or output");
      }
    }
    for (uint32_t i = 0; i < static_cast<uint32_t>(m_.tensors_size()); ++i) {
      if (m_.tensors(static_cast<int>(i)).kind() == kind && !seen[i]) {
        return fail(tensor_ref(i), " is an ", what, " tensor but not in the model's ", what, "s");
      }
    }
    return Status::OK();
  }

  Status check_model_io() const {
    std::set<std::string> names;
    PS_TRY(check_io_list(m_.inputs(), psm::Tensor::INPUT, "input", names));
    return check_io_list(m_.outputs(), psm::Tensor::OUTPUT, "output", names);
  }

  Status check_weight_overlap() const {
    std::vector<uint32_t> weights;
    for (uint32_t i = 0; i < static_cast<uint32_t>(m_.tensors_size()); ++i) {
      if (m_.tensors(static_cast<int>(i)).kind() == psm::Tensor::WEIGHT) weights.push_back(i);
    }
    auto offset = [&](uint32_t i) { return m_.tensors(static_cast<int>(i)).weight_offset(); };
    std::sort(weights.begin(), weights.end(), [&](uint32_t a, uint32_t b) {
      return offset(a) != offset(b) ? offset(a) < offset(b) : a < b;
    });
    for (size_t k = 1; k < weights.size(); ++k) {
      const uint32_t prev = weights[k - 1], cur = weights[k];
      if (offset(prev) + bytes_[prev] > offset(cur)) {  // both inside the blob: no overflow
        return fail(tensor_ref(prev), " ", range_string(offset(prev), bytes_[prev]), " and ",
                    tensor_ref(cur), " ", range_string(offset(cur), bytes_[cur]),
                    " overlap in the weight blob");
      }
    }
    return Status::OK();
  }

  Status check_groups() const {
    const uint64_t layers = static_cast<uint64_t>(m_.layers_size());
    if (m_.groups_size() == 0) return fail("the manifest has no groups (", layers, " layers)");
    std::vector<int> group_of_layer(layers, -1);
    uint64_t next = 0;
    for (int g = 0; g < m_.groups_size(); ++g) {
      const auto& group = m_.groups(g);
      if (group.first_layer() != next) {
        return fail(group_ref(g), " starts at layer ", group.first_layer(), ", expected ", next,
                    " (groups cover all layers in order, without gaps or overlaps)");
      }
      if (group.layer_count() == 0) return fail(group_ref(g), " has no layers");
      const uint64_t end = next + group.layer_count();
      if (end > layers) {
        return fail(group_ref(g), " layers [", next, ", ", end, ") run past the last layer (",
                    layers, " layers)");
      }
      std::fill(group_of_layer.begin() + static_cast<ptrdiff_t>(next),
                group_of_layer.begin() + static_cast<ptrdiff_t>(end), g);
      next = end;
    }
    if (next != layers) {
      return fail("the groups cover layers [0, ", next, ") of ", layers);
    }

    // The span of the weights each group's layers read first.
    struct Span {
      uint64_t begin = UINT64_MAX, end = 0;
    };
    std::vector<Span> spans(m_.groups_size());
    for (uint32_t i = 0; i < static_cast<uint32_t>(m_.tensors_size()); ++i) {
      if (m_.tensors(static_cast<int>(i)).kind() != psm::Tensor::WEIGHT) continue;
      Span& s = spans[group_of_layer[first_use_[i]]];
      const uint64_t offset = m_.tensors(static_cast<int>(i)).weight_offset();
      s.begin = std::min(s.begin, offset);
      s.end = std::max(s.end, offset + bytes_[i]);
    }
    uint64_t previous_end = 0;
    for (int g = 0; g < m_.groups_size(); ++g) {
      const auto& group = m_.groups(g);
      const Span& s = spans[g];
      if (s.begin == UINT64_MAX) {
        if (group.byte_size() != 0) {
          return fail(group_ref(g), " claims ", group.byte_size(),
                      " bytes but its layers read no weights first");
        }
        continue;
      }
      if (group.blob_offset() != s.begin || group.byte_size() != s.end - s.begin) {
        return fail(group_ref(g), " blob range ",
                    range_string(group.blob_offset(), group.byte_size()),
                    " does not match the weights its layers read first, ",
                    range_string(s.begin, s.end - s.begin));
      }
      if (s.begin < previous_end) {
        return fail(group_ref(g), " blob range ", range_string(s.begin, s.end - s.begin),
                    " starts before the end of the previous group (", previous_end,
                    "): weights must be packed in execution order");
      }
      previous_end = s.end;
    }
    return Status::OK();
  }

  const psm::Manifest& m_;
  const uint64_t blob_bytes_;
  const std::string_view label_;
  std::vector<uint64_t> bytes_;   // per tensor: elements * dtype size
  std::vector<int> produced_by_;  // per tensor: the layer that writes it, or -1
  std::vector<int> first_use_;    // per weight: the first layer that reads it, or -1
};

}  // namespace

std::optional<uint64_t> checked_element_count(const psm::Tensor& tensor) {
  if (tensor.shape_size() > kMaxRank) return std::nullopt;
  uint64_t count = 1;
  for (int64_t dim : tensor.shape()) {
    if (dim <= 0) return std::nullopt;
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count)) return std::nullopt;
    if (count > kMaxElements) return std::nullopt;
  }
  return count;
}

Status validate_manifest(const psm::Manifest& manifest, uint64_t blob_bytes,
                         std::string_view label) {
  return Validator(manifest, blob_bytes, label).run();
}

}  // namespace ps::onnx_loader
