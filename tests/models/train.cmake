# The CPU half of training (issue 7; included from tests/models/CMakeLists.txt):
# test_cpu_grad: every backward operator against finite differences.
ps_add_test(test_cpu_grad
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cpu_grad_test.cc
  LIBS ps_cpu_train)
# test_cpu_train: SGD, the synthetic data, the CPU trainer on the tiny zoo models.
ps_add_test(test_cpu_train
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cpu_train_test.cc
  LIBS ps_cpu_train ps_zoo_lowering)
# test_cpu_checkpoint: save, restore and continue bit-identically; failed saves; bad files.
ps_add_test(test_cpu_checkpoint
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cpu_checkpoint_test.cc
  LIBS ps_cpu_train ps_zoo_lowering)
