# The GPU half of training (issue 7; included from tests/models/gpu.cmake).
# test_gpu_grad_ops: the training kernels (cuda/kernels/train.cu, train_bert.cu) under the host
# emulation and their plan arithmetic (BERT's MatMul plan with a host GEMM), on the CPU; the
# grad table against the training-mode zoo manifests; [gpu] cases: every backward operator, the
# loss and SGD on the device against the float64 CPU references (models/cpu/grad*.cc, sgd.cc).
ps_add_test(test_gpu_grad_ops
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/gpu_train_kernel_emulation_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_train_bert_emulation_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_grad_ops_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_grad_bert_ops_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_attention_test.cc
  LIBS ps_gpu_test_support ps_cpu_train ps_zoo_lowering)
# The emulation tests compile cuda/kernels/*.cu for the host: g++ does not know #pragma unroll.
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gpu_train_kernel_emulation_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/gpu_train_bert_emulation_test.cc
  PROPERTIES COMPILE_OPTIONS "-Wno-unknown-pragmas")

# test_gpu_trainer_plan: the GPU trainer's device-free half on the CPU: the step plan, the
# gradient write/accumulate table and the arena (trainer_plan.h) on the training-mode tiny zoo
# models, chunk cutting, and the synthetic-data kernels under the host emulation against the
# CPU dataset. "[.resnet152]" (hidden) prints ResNet152's memory plan at batch 64.
ps_add_test(test_gpu_trainer_plan
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/gpu_trainer_plan_test.cc
  LIBS ps_gpu ps_zoo_lowering)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gpu_trainer_plan_test.cc
  PROPERTIES COMPILE_OPTIONS "-Wno-unknown-pragmas")

# test_gpu_trainer: [gpu] only: the GPU trainer against the float64 CPU trainer on resnet_tiny
# and inception_tiny (one step's gradients and weights, 10 steps' losses), chunked stepping
# bit-identical to whole steps, export/import round trip, create() refusals, the device batch
# against SyntheticData.
ps_add_test(test_gpu_trainer
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/gpu_trainer_test.cc
  LIBS ps_gpu_test_support ps_zoo_lowering)
