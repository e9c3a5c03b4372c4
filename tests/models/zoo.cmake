# The model zoo's tests; included from tests/models/CMakeLists.txt.
ps_add_test(test_zoo SOURCES ${CMAKE_CURRENT_LIST_DIR}/zoo_test.cc LIBS ps_zoo)
