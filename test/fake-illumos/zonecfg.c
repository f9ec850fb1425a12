/* Fake zonecfg (to be written): see common.h and ../../../shared/reference/illumos-abi.md §8. */
#include "common.h"
