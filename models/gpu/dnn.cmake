# The cuDNN and cuBLAS operators of the GPU executor (the "dnn" part; included by
# models/gpu/CMakeLists.txt). Their small kernels are cuda/kernels/dnn_*.cu.
target_sources(ps_gpu PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/attention_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/batch_norm_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/conv_algo.cc
  ${CMAKE_CURRENT_LIST_DIR}/conv_graph.cc
  ${CMAKE_CURRENT_LIST_DIR}/conv_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/dnn_descriptors.cc
  ${CMAKE_CURRENT_LIST_DIR}/gemm_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/head_gemm.cc
  ${CMAKE_CURRENT_LIST_DIR}/lt_matmul.cc
  ${CMAKE_CURRENT_LIST_DIR}/matmul_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/pool_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/window_plan.cc
)
