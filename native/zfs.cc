// libzfs bindings (to be written): see modules.h.
#include "modules.h"

namespace sled {

void InitZfs(Napi::Env, Napi::Object) {}

}  // namespace sled
