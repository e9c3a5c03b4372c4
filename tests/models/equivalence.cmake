# Whole-model equivalence of the inference passes: fused vs unfused manifests run on the CPU
# (included from tests/models/CMakeLists.txt).
ps_add_test(test_pass_equivalence
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/pass_equivalence_test.cc
  LIBS ps_onnx_loader ps_zoo ps_cpu_ops)
