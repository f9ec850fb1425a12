// What native/scf.cc exports: a service instance's restarter/state inside a zone, read once or
// waited for with libscf's property-group wait. Errors reject with `code` = the scf_error_t name
// ("SCF_ERROR_NOT_FOUND", "SCF_ERROR_NO_SERVER", "SCF_ERROR_DELETED", ...), "ETIMEDOUT",
// "ECANCELED", or "ENOLIB"; bad argument types throw a TypeError (code ERR_INVALID_ARG_TYPE).

/** Options of smfWaitState. */
export interface ScfWaitOptions {
  /** Resolve as soon as restarter/state is one of these (at once if it already is). Non-empty. */
  states: string[];
  /**
   * Reject with code "ETIMEDOUT" after this many ms (absent: no deadline). libscf's wait counts
   * whole seconds, so the rejection comes no earlier than this and at most about 1 s after it;
   * src/illumos/smf.ts adds an exact timer.
   */
  timeoutMs?: number;
}

/** A pending smfWaitState: its own thread and libscf handle until it settles. */
export interface ScfWait {
  /** The state reached (one of `states`). */
  readonly promise: Promise<string>;
  /**
   * Unbinds the wait's handle from another thread (libscf's only way to interrupt a wait); the
   * promise then rejects with code "ECANCELED". False if it had already finished or been cancelled.
   */
  cancel(): boolean;
}

export interface ScfNative {
  /** restarter/state of `fmri` ("svc:/<service>:<instance>") in `zone` ("global" for the global zone). */
  smfState(zone: string, fmri: string): Promise<string>;
  /** Waits, without polling, until restarter/state of `fmri` in `zone` is one of `options.states`. */
  smfWaitState(zone: string, fmri: string, options: ScfWaitOptions): ScfWait;
}
