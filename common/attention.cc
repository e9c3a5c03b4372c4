#include "common/attention.h"

namespace ps {

Result<AttentionLayout> attention_layout(const char* what, const Shape& x, int64_t heads,
                                         int64_t size, std::initializer_list<int64_t> starts) {
  if (x.size() != 3) {
    return invalid_argument(what, ": X must be [batch, sequence, columns], not ", shape_string(x));
  }
  if (x[0] < 1 || x[1] < 1 || x[2] < 1) {
    return invalid_argument(what, ": X ", shape_string(x), " is empty");
  }
  if (heads < 1 || size < 1 || size % heads != 0) {
    return invalid_argument(what, ": ", heads, " heads do not divide ", size, " columns");
  }
  for (int64_t start : starts) {
    if (start < 0 || start > x[2] - size) {
      return invalid_argument(what, ": columns [", start, ", ", start + size, ") do not fit X ",
                              shape_string(x));
    }
  }
  AttentionLayout l;
  l.batch = x[0];
  l.seq = x[1];
  l.columns = x[2];
  l.heads = heads;
  l.head_size = size / heads;
  return l;
}

Result<int64_t> attention_context_rows(const AttentionLayout& l, const Shape& p) {
  if (p.size() != 4 || p[0] != l.batch || p[1] != l.heads || p[3] != l.seq || p[2] < 1) {
    return invalid_argument("AttentionContext: P ", shape_string(p), " is not [", l.batch, ", ",
                            l.heads, ", M, ", l.seq, "]");
  }
  return p[2];
}

}  // namespace ps
