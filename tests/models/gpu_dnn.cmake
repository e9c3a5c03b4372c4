# The cuDNN/cuBLAS operators (models/gpu/dnn_ops.cc and friends): planning helpers on the CPU,
# every operator against the CPU reference on the GPU ([gpu], skipped without one).
ps_add_test(test_gpu_dnn_ops
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/gpu_dnn_plan_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_dnn_ops_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_conv_graph_test.cc
  LIBS ps_gpu_test_support)
