// The bootstrap agent (omicron bootstrap/agent.rs): brings this sled's sled agent up when RSS
// asks (`start_sled`), remembers that request across restarts, and holds this sled's trust-quorum
// share for its peers.
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { formatSocketAddr } from '../common/address.js';
import { lockAgentDirectories, simHostLock } from '../common/dir-lock.js';
import { ApiError, conflict, invalidRequest, objectNotFound } from '../common/errors.js';
import { addressInNet, formatIpv6Net, getByte, parseIpv6Net, sameNet } from '../common/ipv6.js';
import { readJsonIfExists, writeJsonAtomic } from '../common/persist.js';
import type { SledAgentRequest } from '../params.js';
import { startSim } from '../sim/server.js';
import { SLED_AGENT_PORT, type BootstrapConfig } from './config.js';
import {
  decodeShare, establishQuorum, readShareFile, shareResponseBody, type QuorumResult, type ShareDistribution,
} from './trust-quorum.js';

export const SLED_AGENT_REQUEST_FILE = 'sled-agent-request.json';

const EXAMPLE_SUBNET = 'fd00:1122:3344:101::/64';

/**
 * What is wrong with `text` as a sled's subnet (a unique local IPv6 /64, as RSS hands out), said
 * for a person, or null if nothing is. Used in place of the contract's regular expression, which
 * is all a schema failure could otherwise show.
 */
export function sledSubnetProblem(text: string): string | null {
  // The prefix first: a /48 given for a /64 has "host bits", but the length is what to fix.
  const parts = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (parts && isIPv6(parts[1]!) && Number(parts[2]) !== 64) {
    return `a sled's subnet is a /64, not /${Number(parts[2])} (${JSON.stringify(text)}); for example ${EXAMPLE_SUBNET}`;
  }
  let net;
  try {
    net = parseIpv6Net(text);
  } catch (err) {
    return `${(err as Error).message}; a sled's subnet is an IPv6 /64 such as ${EXAMPLE_SUBNET}`;
  }
  if (getByte(net.network, 0) !== 0xfd) {
    return `${JSON.stringify(text)} is not in fd00::/8: a sled's subnet is a unique local /64 such as ${EXAMPLE_SUBNET}`;
  }
  return null;
}

/**
 * The message for a start_sled body the contract's pattern refused, when the pattern is what
 * failed on subnet.net; any other schema failure is left as it is.
 */
export function explainSubnetRejection(body: unknown): string | null {
  const net = (body as { subnet?: { net?: unknown } } | null)?.subnet?.net;
  if (typeof net !== 'string') return null;
  // Otherwise the spelling is what the pattern refused: it takes "::" only at the end, after at
  // least two groups (fd00:0::/64, not fd00::/64), or all eight groups written out.
  return `body/subnet/net: ${sledSubnetProblem(net)
    ?? `${JSON.stringify(net)} is a sled subnet, but spelled in a form the API does not take: write all eight groups, `
      + `or at least the first two followed by "::" at the end, as in ${EXAMPLE_SUBNET}`}`;
}

/** The sled agent this bootstrap agent started: the real one or the simulated one. */
export interface StartedSledAgent {
  address: string;
  /**
   * Settles once Nexus answered this sled's registration (and, when it accepted, the storage
   * reports); pending for as long as Nexus does not answer, as the agent keeps retrying.
   */
  registered: Promise<void>;
  close(): Promise<void>;
}

interface Running {
  subnet: string;
  sim: StartedSledAgent;
}

export class BootstrapAgent {
  private running: Running | null = null;
  /** start_sled calls are serialised: two RSS retries must not start two sled agents. */
  private queue: Promise<unknown> = Promise.resolve();
  private share: ShareDistribution | null = null;

  constructor(readonly config: BootstrapConfig, private readonly log: Logger) {}

  get requestPath(): string {
    return join(this.config.data_dir, SLED_AGENT_REQUEST_FILE);
  }

  /** The running sled agent, if any. */
  get sledAgent(): StartedSledAgent | null {
    return this.running?.sim ?? null;
  }

  /** Loads the share (if configured) and starts the sled agent a persisted request asks for. */
  async init(): Promise<void> {
    if (this.config.trust_quorum) {
      this.share = await readShareFile(this.config.trust_quorum.share_file);
      this.log.info({ threshold: this.share.threshold, total: this.share.total_shares }, 'trust-quorum share loaded');
    }
    const persisted = await readJsonIfExists(this.requestPath);
    if (persisted === null) {
      this.log.info('no sled agent request persisted; waiting for start_sled');
      return;
    }
    const subnet = (persisted as SledAgentRequest | null)?.subnet?.net;
    if (typeof subnet !== 'string') throw new Error(`${this.requestPath} does not hold a sled agent request`);
    this.log.info({ subnet }, 'starting the sled agent from the persisted request');
    await this.startSled({ subnet: { net: subnet } });
  }

  /**
   * PUT /start_sled. Idempotent for the same subnet; a different subnet is refused naming both
   * (the original answered 500). The request is persisted once the sled agent is up, so a crash
   * before that leaves RSS to ask again.
   */
  startSled(request: SledAgentRequest): Promise<{ id: string }> {
    const next = this.queue.then(() => this.doStartSled(request));
    this.queue = next.catch(() => {});
    return next;
  }

  private async doStartSled(request: SledAgentRequest): Promise<{ id: string }> {
    const problem = sledSubnetProblem(request.subnet.net);
    if (problem) throw invalidRequest(`body/subnet/net: ${problem}`);
    const net = parseIpv6Net(request.subnet.net);
    const subnet = formatIpv6Net(net);
    if (this.running) {
      if (sameNet(parseIpv6Net(this.running.subnet), net)) return { id: this.config.id };
      throw conflict(`the sled agent is already running on subnet ${this.running.subnet}; refusing to move it to ${subnet}`);
    }
    const address = this.config.sled_address
      ?? formatSocketAddr({ host: addressInNet(net, 1n), port: SLED_AGENT_PORT });
    let sim: StartedSledAgent;
    try {
      sim = await this.startSledAgent(address, addressInNet(net, 1n));
    } catch (err) {
      const hint = this.config.sled_address ? '' : '; on a machine without that address, set sled_address in the bootstrap config';
      throw new ApiError(500, 'Internal', `cannot start the sled agent on ${address}: ${(err as Error).message}${hint}`);
    }
    try {
      await writeJsonAtomic(this.requestPath, { subnet: { net: subnet } });
    } catch (err) {
      await sim.close();
      throw new ApiError(500, 'Internal', `cannot persist the sled agent request to ${this.requestPath}: ${(err as Error).message}`);
    }
    this.running = { subnet, sim };
    this.log.info({ subnet, address: sim.address, id: this.config.id }, 'sled agent started');
    return { id: this.config.id };
  }

  private async startSledAgent(address: string, underlay: string): Promise<StartedSledAgent> {
    // Not "component": the sled agent's parts bind their own, and pino would write both.
    const log = this.log.child({ agent: 'sled-agent' });
    if (this.config.sled_agent_config === undefined) {
      const config = {
        ...this.config.sled_agent,
        id: this.config.id,
        dropshot: { ...this.config.sled_agent.dropshot, bind_address: address },
      };
      return startSim(config, log);
    }
    const { loadAgentConfigFile } = await import('../config.js');
    const { openHost } = await import('../host/open.js');
    const { startAgent } = await import('../sled-agent.js');
    const config = loadAgentConfigFile(this.config.sled_agent_config);
    config.id = this.config.id;
    config.dropshot = { ...config.dropshot, bind_address: address };
    config.underlay_address = underlay;
    const locks = lockAgentDirectories(config);
    const release = () => {
      for (const lock of locks) lock.release();
    };
    try {
      const host = await openHost(config, log, { simHostLock: simHostLock(locks) });
      const agent = await startAgent(config, host, log).catch(async (err: unknown) => {
        await host.close();
        throw err;
      });
      return { address: agent.address, registered: agent.registered, close: () => agent.close().finally(release) };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** GET /request_share: this sled's share, for a requester in the configured peer list only. */
  requestShare(identity: Uint8Array): { shared_secret: number[] } {
    if (!this.share || !this.config.trust_quorum) throw objectNotFound('this sled holds no trust-quorum share');
    const who = new TextDecoder('utf-8', { fatal: false }).decode(identity);
    if (!this.config.trust_quorum.allowed_identities.includes(who)) {
      this.log.warn({ identity: who }, 'refused a share request from an unknown identity');
      throw new ApiError(403, 'Forbidden', `identity ${JSON.stringify(who)} is not a trust-quorum peer of this sled`);
    }
    this.log.info({ identity: who }, 'share given to a peer');
    return shareResponseBody(decodeShare(this.share));
  }

  /** Gathers shares from the configured peers and reconstructs the rack secret. */
  async establishQuorum(timeoutMs = 5_000): Promise<QuorumResult> {
    if (!this.share || !this.config.trust_quorum) throw new Error('no trust quorum configured on this sled');
    const identity = new TextEncoder().encode(this.config.id);
    const result = await establishQuorum(this.share, decodeShare(this.share), this.config.trust_quorum.peers, identity, { timeoutMs });
    this.log.info({ used: result.used, failed: result.failed.map((f) => `${f.peer}: ${f.error.message}`) }, 'rack secret reconstructed');
    return result;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.running?.sim.close();
    this.running = null;
  }
}
