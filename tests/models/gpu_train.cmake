# The GPU half of training (issue 7; included from tests/models/gpu.cmake).
# test_gpu_grad_ops: the training kernels (cuda/kernels/train.cu) under the host emulation and
# their plan arithmetic, on the CPU; [gpu] cases: every backward operator, the loss and SGD on
# the device against the float64 CPU references (models/cpu/grad*.cc, sgd.cc).
ps_add_test(test_gpu_grad_ops
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/gpu_train_kernel_emulation_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_grad_ops_test.cc
  LIBS ps_gpu_test_support ps_cpu_train)
# The emulation test compiles cuda/kernels/*.cu for the host: g++ does not know #pragma unroll.
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gpu_train_kernel_emulation_test.cc
  PROPERTIES COMPILE_OPTIONS "-Wno-unknown-pragmas")
