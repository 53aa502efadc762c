/* Test plugin: registration that the host must refuse, chosen by the environment variable
 * COHORT_TEST_REGISTER_MODE (a refused plugin is not remembered, so one library serves every
 * case): "duplicate" (one name twice), "builtin" (a built-in kind's name), "taken" (a name the
 * keyword test plugin defines), "invalid_name", "no_score", "fail" (register returns 1 after
 * registering a function) and "none" (registers nothing). Unset, it refuses to load. */
#include <stdlib.h>
#include <string.h>

#include "reward/plugin.h"

static int zero_score(void* state, const cohort_reward_sample* sample, double* score, char* message_buf,
                      size_t message_cap) {
  *score = 0.0;
  return COHORT_REWARD_SCORED;
}

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}

int cohort_reward_plugin_register(const cohort_reward_registry* registry) {
  const char* mode = getenv("COHORT_TEST_REGISTER_MODE");
  if (mode == NULL) mode = "";
  cohort_reward_function_def def = {"bad_register_ok", NULL, NULL, zero_score, NULL};
  if (strcmp(mode, "none") == 0) return 0;
  if (strcmp(mode, "") == 0) return 1; /* unset: refuse, so a stray load cannot succeed */
  if (strcmp(mode, "builtin") == 0) def.name = "exact_match";
  if (strcmp(mode, "taken") == 0) def.name = "keyword_contains";
  if (strcmp(mode, "invalid_name") == 0) def.name = "bad name!";
  if (strcmp(mode, "no_score") == 0) def.score = NULL;
  int status = registry->register_function(registry->host, &def);
  if (strcmp(mode, "duplicate") == 0) status = registry->register_function(registry->host, &def);
  if (strcmp(mode, "fail") == 0) return 1;
  /* Ignore a refusal on purpose: the host must fail the load anyway. */
  (void)status;
  return 0;
}
