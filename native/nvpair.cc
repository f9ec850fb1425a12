// libnvpair: resolved once for every library file that builds or reads nvlists (zfs.cc for
// dataset properties, events.cc for sysevent attributes). No exported JS functions of its own;
// the table `sled::nvpair_api` is declared in abi/nvpair.h.
#include "abi.h"
#include "loader.h"

namespace sled {

NvpairApi nvpair_api{};

namespace {

#define NVP_SYM(name) {#name, reinterpret_cast<void**>(&nvpair_api.name)}

Library lib("nvpair", "libnvpair.so.1",
            {
                NVP_SYM(nvlist_alloc),
                NVP_SYM(nvlist_free),
                NVP_SYM(nvlist_dup),
                NVP_SYM(nvlist_add_boolean),
                NVP_SYM(nvlist_add_boolean_value),
                NVP_SYM(nvlist_add_int32),
                NVP_SYM(nvlist_add_uint32),
                NVP_SYM(nvlist_add_int64),
                NVP_SYM(nvlist_add_uint64),
                NVP_SYM(nvlist_add_string),
                NVP_SYM(nvlist_add_nvlist),
                NVP_SYM(nvlist_add_hrtime),
                NVP_SYM(nvlist_remove_all),
                NVP_SYM(nvlist_lookup_boolean),
                NVP_SYM(nvlist_lookup_boolean_value),
                NVP_SYM(nvlist_lookup_int32),
                NVP_SYM(nvlist_lookup_uint32),
                NVP_SYM(nvlist_lookup_int64),
                NVP_SYM(nvlist_lookup_uint64),
                NVP_SYM(nvlist_lookup_string),
                NVP_SYM(nvlist_lookup_nvlist),
                NVP_SYM(nvlist_lookup_hrtime),
                NVP_SYM(nvlist_exists),
                NVP_SYM(nvlist_next_nvpair),
                NVP_SYM(nvpair_name),
                NVP_SYM(nvpair_type),
                NVP_SYM(nvpair_value_boolean_value),
                NVP_SYM(nvpair_value_int32),
                NVP_SYM(nvpair_value_uint32),
                NVP_SYM(nvpair_value_int64),
                NVP_SYM(nvpair_value_uint64),
                NVP_SYM(nvpair_value_string),
                NVP_SYM(nvpair_value_nvlist),
                NVP_SYM(nvpair_value_hrtime),
            });

#undef NVP_SYM

}  // namespace

const Library& nvpair_library() { return lib; }

}  // namespace sled
