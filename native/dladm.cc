// libdladm bindings (to be written): see modules.h.
#include "modules.h"

namespace sled {

void InitDladm(Napi::Env, Napi::Object) {}

}  // namespace sled
