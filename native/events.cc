// libevents bindings (to be written): see modules.h.
#include "modules.h"

namespace sled {

void InitEvents(Napi::Env, Napi::Object) {}

}  // namespace sled
