// What native/zfs.cc exports (to be written).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ZfsNative {}
