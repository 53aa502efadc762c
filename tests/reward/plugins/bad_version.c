/* Test plugin: built for an ABI this host does not know (999). The host must refuse it after
 * asking for the version, before calling anything else. */
#include "reward/plugin.h"

static int never_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                       size_t message_cap) {
  *score = 1.0;
  return COHORT_REWARD_SCORED;
}

uint32_t cohort_reward_plugin_abi_version(void) {
  return 999;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  cohort_reward_function_def def = {"bad_version", "never registered", NULL, never_score, NULL};
  return registry->register_function(registry->host, &def);
}
