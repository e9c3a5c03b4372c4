# The training part of ps_gpu (issue 7; included by models/gpu/CMakeLists.txt): backward
# operators on cuDNN, cuBLAS and our kernels (cuda/kernels/train.cu), the loss and SGD.
target_sources(ps_gpu PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/grad_batch_norm.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_conv.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_gemm.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_kernel_ops.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_kernel_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_ops.cc
)
