# Our kernel ops' tests (included from tests/models/gpu.cmake): the [gpu] cases compare every
# op with the CPU reference on the GPU; the plan-time cases run anywhere.
ps_add_test(test_gpu_kernel_ops
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/gpu_kernel_ops_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_kernel_plan_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/gpu_kernel_emulation_test.cc
  LIBS ps_gpu_test_support)
# The emulation test compiles cuda/kernels/*.cu for the host: g++ does not know #pragma unroll.
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/gpu_kernel_emulation_test.cc
  PROPERTIES COMPILE_OPTIONS "-Wno-unknown-pragmas")
