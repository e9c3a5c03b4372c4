// What the text protocol's command files share (server_text.cc, server_train.cc,
// server_stats.cc): error replies from a wire code or a Status, a job's fields. Internal to
// reactor/.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "net/text_reply.h"
#include "net/wire_error.h"
#include "reactor/scheduler.h"

namespace ps::reactor {

inline std::string error_reply(net::ErrorCode code, std::string_view message) {
  return net::format_error(code, message);
}

// The wire error for a Status, with UNKNOWN_MODEL / UNKNOWN_JOB where the command knows what
// was not found.
inline std::string status_reply(const Status& status, net::ErrorCode not_found_code) {
  net::ErrorCode code = net::error_code_for(status.code());
  if (status.code() == Code::kNotFound) code = not_found_code;
  return error_reply(code, status.message());
}

// One training job's fields, as JOBS and STATS list them (server_train.cc); with several
// devices (backend.devices) also gpu=NAME, the device it is pinned to, while it runs.
net::OkLine job_fields(const JobInfo& job, const BackendStats& backend);

}  // namespace ps::reactor
