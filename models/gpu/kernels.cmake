# Our own kernels' ops (cuda/kernels/*.cu launched from here); included by models/gpu/CMakeLists.txt.
target_sources(ps_gpu PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/copy_launch.cc
  ${CMAKE_CURRENT_LIST_DIR}/elementwise_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/fused_attention_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/head_slice_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/index_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/kernel_op_util.cc
  ${CMAKE_CURRENT_LIST_DIR}/layout_ops.cc
  ${CMAKE_CURRENT_LIST_DIR}/norm_softmax_ops.cc
  ${CMAKE_CURRENT_LIST_DIR}/reduce_op.cc
  ${CMAKE_CURRENT_LIST_DIR}/shape_ops.cc
)
