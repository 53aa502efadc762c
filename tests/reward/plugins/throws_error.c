/* Test plugin: "always_error", whose score returns COHORT_REWARD_ERROR with the message
 * "plugin says no"; with {"unterminated": true} it fills the whole message buffer without a NUL,
 * which the host must survive. */
#include <stdio.h>
#include <string.h>

#include "reward/plugin.h"

static int unterminated_flag; /* a static object whose address serves as the second state */

static void* error_create(const char* options_json, char* error_buf, size_t error_cap) {
  static int terminated_flag;
  return strstr(options_json, "\"unterminated\":true") != NULL ? (void*)&unterminated_flag : (void*)&terminated_flag;
}

static int error_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                       size_t message_cap) {
  if (state == &unterminated_flag) {
    memset(message_buf, 'x', message_cap);
  } else {
    snprintf(message_buf, message_cap, "%s", "plugin says no");
  }
  return COHORT_REWARD_ERROR;
}

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  cohort_reward_function_def def = {"always_error", "fails every sample (a test function)", error_create, error_score,
                                    NULL};
  return registry->register_function(registry->host, &def);
}
