// libnvpair: resolved for zfs.cc and events.cc (to be written).
