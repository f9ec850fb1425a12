// The latest of a series of ledger writes while it is in flight. A request that finds nothing
// to change, because an earlier one changed it and that write has not landed, is answered only
// once it has (and refused if it failed), as the earlier request is. Writes land in the order
// they were made, so the latest covers those before it.
export class LatestWrite {
  #pending: Promise<void> | null = null;

  /** Keeps `write` as the latest; returns it. */
  track(write: Promise<void>): Promise<void> {
    this.#pending = write;
    const settled = (): void => {
      if (this.#pending === write) this.#pending = null;
    };
    write.then(settled, settled);
    return write;
  }

  /** Settles once the write in flight, if any, is durable; rejects if it failed. */
  landed(): Promise<void> {
    return this.#pending ?? Promise.resolve();
  }
}
