// libscf bindings (to be written): see modules.h.
#include "modules.h"

namespace sled {

void InitScf(Napi::Env, Napi::Object) {}

}  // namespace sled
