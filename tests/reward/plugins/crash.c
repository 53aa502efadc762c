/* Test plugin: "crash", whose score writes through a NULL pointer (SIGSEGV). For the isolation
 * pool's crash handling; never call it in the test process. */
#include <signal.h>
#include <stddef.h>

#include "reward/plugin.h"

static int crash_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                       size_t message_cap) {
  /* A store through NULL is undefined behaviour that compilers delete, so the fault is raised as the
   * hardware would raise it. */
  raise(SIGSEGV);
  return COHORT_REWARD_NO_SCORE;
}

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  cohort_reward_function_def def = {"crash", "dereferences NULL (a test function)", NULL, crash_score, NULL};
  return registry->register_function(registry->host, &def);
}
