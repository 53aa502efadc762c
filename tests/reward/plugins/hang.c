/* Test plugin: "hang", whose score never returns. For the isolation pool's time limit; never call
 * it in the test process. */
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>

#include "reward/plugin.h"

static int hang_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                      size_t message_cap) {
  for (;;) sleep(1000);
  return COHORT_REWARD_NO_SCORE;
}

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  cohort_reward_function_def def = {"hang", "sleeps forever (a test function)", NULL, hang_score, NULL};
  return registry->register_function(registry->host, &def);
}
