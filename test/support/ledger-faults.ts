// Ledger writes that fail, for tests of what the agent does when its disk does: every Ledger's
// commit is replaced until the returned restore() puts the real one back.
import { Ledger } from '../../src/ledger.js';

export const eio = (): Error => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });

/** Every ledger write fails with EIO at once. */
export function failLedgerWrites(): () => void {
  const original = Ledger.prototype.commit;
  Ledger.prototype.commit = () => Promise.reject(eio());
  return () => { Ledger.prototype.commit = original; };
}

/** Every ledger write waits until release(), then fails with EIO: a write in flight that will not land. */
export function holdLedgerWrites(): { release(): void; restore(): void } {
  const original = Ledger.prototype.commit;
  let release!: () => void;
  const held = new Promise<void>((resolve) => { release = resolve; });
  Ledger.prototype.commit = async () => {
    await held;
    throw eio();
  };
  return { release, restore: () => { Ledger.prototype.commit = original; } };
}
