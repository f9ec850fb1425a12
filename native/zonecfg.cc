// libzonecfg bindings (to be written): see modules.h.
#include "modules.h"

namespace sled {

void InitZonecfg(Napi::Env, Napi::Object) {}

}  // namespace sled
