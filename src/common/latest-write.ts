// The latest of a series of ledger writes. A request that finds nothing to change, because an
// earlier one changed it, is answered only once that change is durable, as the earlier request
// is: once the write in flight lands (refused if it fails), or, if the latest write failed and
// memory is ahead of the disk, once a new write of the same state lands. Writes land in the
// order they were made, and a write after a failed one carries everything, so the latest covers
// those before it.
export class LatestWrite {
  #pending: Promise<void> | null = null;
  /** The latest write failed and none has been made since: what it carried is not on disk. */
  #failed = false;

  /** Keeps `write` as the latest; returns it. */
  track(write: Promise<void>): Promise<void> {
    this.#pending = write;
    const settled = (ok: boolean) => (): void => {
      if (this.#pending !== write) return;
      this.#pending = null;
      this.#failed = !ok;
    };
    write.then(settled(true), settled(false));
    return write;
  }

  /** Settles once what the writes so far carried is durable, making `again` (a new write) if the latest failed; rejects if that fails. */
  landed(again: () => Promise<void>): Promise<void> {
    if (this.#pending !== null) return this.#pending;
    return this.#failed ? again() : Promise.resolve();
  }
}
