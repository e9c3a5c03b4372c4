// Helpers shared by the dnn operator tests: attributes from values, tensor specs.
#pragma once

#include <string>
#include <vector>

#include "models/cpu/ops.h"
#include "models/gpu/op.h"

namespace ps::models::gpu::dnn_test {

inline pipeswitch::psm::Attribute attr_i(const std::string& name, int64_t v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_i(v);
  return a;
}
inline pipeswitch::psm::Attribute attr_f(const std::string& name, float v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_f(v);
  return a;
}
inline pipeswitch::psm::Attribute attr_s(const std::string& name, const std::string& v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_s(v);
  return a;
}
inline pipeswitch::psm::Attribute attr_ints(const std::string& name,
                                            const std::vector<int64_t>& v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  for (int64_t x : v) a.mutable_ints()->add_values(x);
  return a;
}
inline cpu::Attributes attrs(const std::vector<pipeswitch::psm::Attribute>& list) {
  cpu::Attributes out;
  for (const auto& a : list) *out.Add() = a;
  return out;
}
inline TensorSpec f32(Shape shape) { return TensorSpec{DType::kFloat32, std::move(shape), false}; }

}  // namespace ps::models::gpu::dnn_test
