/* Test plugin: exports the ABI version but not cohort_reward_plugin_register; the host must name
 * the missing symbol. */
#include "reward/plugin.h"

uint32_t cohort_reward_plugin_abi_version(void) {
  return COHORT_REWARD_PLUGIN_ABI_VERSION;
}
