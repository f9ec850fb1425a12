// What native/zonecfg.cc exports (to be written).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ZonecfgNative {}
