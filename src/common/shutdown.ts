// Shutdown as a list of steps, each with a deadline: a signalled agent must exit even when one
// step cannot finish (a request that never completes, a peer that never answers). A step that
// fails or runs out of time is logged and the next one runs; finish() then reports it.
import type { Logger } from 'pino';

const LATE = Symbol('late');

export class Shutdown {
  private readonly incomplete: string[] = [];

  constructor(private readonly log: Logger) {}

  /** Runs `fn`, waiting for it at most `ms`. False if it failed or was late. */
  async step(name: string, ms: number, fn: () => PromiseLike<unknown>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<typeof LATE>((resolve) => {
      timer = setTimeout(() => resolve(LATE), ms);
    });
    try {
      if (await Promise.race([fn(), late]) !== LATE) return true;
      this.log.warn({ step: name, ms }, 'shutdown step did not finish in time; going on without it');
    } catch (err) {
      this.log.error({ step: name, err }, 'shutdown step failed; going on');
    } finally {
      clearTimeout(timer);
    }
    this.incomplete.push(name);
    return false;
  }

  /** Stops an HTTP app; requests still open after `ms` have their connections closed under them. */
  async closeApp(name: string, ms: number, app: { close(): PromiseLike<unknown>; server: { closeAllConnections(): void } }): Promise<void> {
    if (!(await this.step(name, ms, () => app.close()))) app.server.closeAllConnections();
  }

  /** Throws naming every step that failed or ran out of time. */
  finish(): void {
    if (this.incomplete.length > 0) throw new Error(`shutdown incomplete: ${this.incomplete.join(', ')}`);
  }
}
