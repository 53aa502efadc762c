// Renders a parsed Jinja template the way jinja2's ImmutableSandboxedEnvironment does under
// transformers' settings: its scoping (for-loop bodies are scopes, if-blocks are not), its
// Undefined (prints as "", is falsy and iterates as empty, but fails on attribute access and
// arithmetic), its filters, tests and the str/dict/list methods chat templates call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model/jinja_parser.h"
#include "model/jinja_value.h"

namespace cohort::jinja {

struct RenderLimits {
  size_t max_output_bytes = 0;  // also the bound on any one string built while rendering
  size_t max_list_items = 0;
  uint64_t max_steps = 0;       // statements executed plus loop iterations plus macro calls
  uint64_t max_work_bytes = 0;  // bytes built or scanned by all operations together
  int max_call_depth = 0;       // nested macro calls
};

// Renders `tmpl` with the variables in `context` (the template's global names). Throws
// cohort::Error "ORIGIN:LINE: what" for a failure inside the template (raise_exception, a
// Python TypeError, an undefined value used, a limit exceeded).
std::string render(const Template& tmpl, const Dict& context, const RenderLimits& limits);

}  // namespace cohort::jinja
