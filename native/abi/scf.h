// libscf declarations: see ../abi.h and illumos-abi.md.
#pragma once

extern "C" {
}  // extern "C"
