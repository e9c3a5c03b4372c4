# The training part of ps_gpu (issue 7; included by models/gpu/CMakeLists.txt): backward
# operators on cuDNN, cuBLAS and our kernels (cuda/kernels/train.cu), the loss and SGD; the GPU
# trainer (trainer.h): its pure step plan and memory layout (trainer_plan.cc), the batch on the
# device (trainer_data.cc, cuda/kernels/synthetic_data.cu), the build and the step (trainer.cc),
# the token batches made on the host (trainer_tokens.cc), the profile and chunks
# (trainer_profile.cc), state in and out (trainer_state.cc), paging (trainer_paging.cc), the
# debug step that scans every output for NaN/Inf (trainer_debug.cc).
target_sources(ps_gpu PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/grad_batch_norm.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_bert_ops.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_bert_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_conv.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_gemm.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_kernel_ops.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_op_util.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_kernel_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_matmul.cc
  ${CMAKE_CURRENT_LIST_DIR}/matmul_grad_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/grad_ops.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer_data.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer_debug.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer_paging.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer_plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer_profile.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer_state.cc
  ${CMAKE_CURRENT_LIST_DIR}/trainer_tokens.cc
)
# The trainer keeps the CPU trainer's state type, options and dataset definition.
target_link_libraries(ps_gpu PUBLIC ps_cpu_train)
