# The CPU reference operators' tests (included from tests/models/CMakeLists.txt).
# test_cpu_ops: hand-computed cases; test_onnx_conformance: libonnx-testdata's node cases
# ($PS_ONNX_TESTDATA, default /usr/share/libonnx-testdata/data/node).
ps_add_test(test_cpu_ops
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_conv_pool_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_math_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_tensor_test.cc
  LIBS ps_cpu_ops)
ps_add_test(test_onnx_conformance
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_conformance_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_onnx_data.cc
  LIBS ps_cpu_ops onnx_proto)
