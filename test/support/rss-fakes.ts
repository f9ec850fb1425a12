// Fake bootstrap agents and fake sled agents for the Rack Setup Service tests: real node:http
// servers on 127.0.0.1:0 that record every request (in one shared, ordered log) and check each
// body against the contracts through expectSchema.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { expectSchema } from './contract.js';

/** Throws unless `value` is a valid bootstrap-agent.json schema `name`. */
export function expectBootstrapSchema(name: string, value: unknown): void {
  expectSchema('bootstrap-agent.json', name, value);
}

export interface RecordedRequest {
  /** "bootstrap 0", "sled 1", ... */
  server: string;
  method: string;
  url: string;
  body: any;
}

export interface Answer { status: number; body?: unknown }
/** Return an Answer to override the default, or undefined to let the fake answer normally. */
export type Override = (req: RecordedRequest) => Answer | undefined;

/** Every request to every fake, in arrival order, plus any contract violations seen. */
export class RackLog {
  readonly requests: RecordedRequest[] = [];
  readonly violations: string[] = [];

  /** "PUT /start_sled @bootstrap 0" lines, for asserting order compactly. */
  lines(): string[] {
    return this.requests.map((r) => `${r.method} ${r.url} @${r.server}`);
  }

  clear(): void {
    this.requests.length = 0;
    this.violations.length = 0;
  }
}

abstract class FakeAgent {
  address = '';
  override: Override = () => undefined;
  private server!: Server;

  constructor(readonly name: string, protected readonly log: RackLog) {}

  protected abstract answer(req: RecordedRequest): Answer;

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const { port } = this.server.address() as { port: number };
    this.address = `127.0.0.1:${port}`;
    return this;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = raw;
    try {
      body = raw === '' ? undefined : JSON.parse(raw);
    } catch {
      // recorded as text
    }
    const rec: RecordedRequest = { server: this.name, method: req.method ?? '', url: req.url ?? '', body };
    this.log.requests.push(rec);
    let answer: Answer;
    try {
      answer = this.override(rec) ?? this.answer(rec);
    } catch (err) {
      this.log.violations.push(`${this.name} ${rec.method} ${rec.url}: ${(err as Error).message}`);
      answer = { status: 400, body: { request_id: 'fake', error_code: 'InvalidRequest', message: (err as Error).message } };
    }
    const text = answer.body === undefined ? '' : JSON.stringify(answer.body);
    res.writeHead(answer.status, text ? { 'content-type': 'application/json' } : {});
    res.end(text);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

/** Answers PUT /start_sled {subnet} with 200 {id}; a second, different subnet is a 400 (as ours does). */
export class FakeBootstrapAgent extends FakeAgent {
  subnet: string | null = null;

  constructor(name: string, log: RackLog, readonly id: string) {
    super(name, log);
  }

  protected answer(req: RecordedRequest): Answer {
    if (req.method !== 'PUT' || req.url !== '/start_sled') return { status: 404, body: { request_id: 'fake', message: 'not found' } };
    expectBootstrapSchema('SledAgentRequest', req.body);
    const net = req.body.subnet.net as string;
    if (this.subnet !== null && this.subnet !== net) {
      return { status: 400, body: { request_id: 'fake', error_code: 'InvalidRequest', message: `already running on ${this.subnet}, not ${net}` } };
    }
    this.subnet = net;
    const response = { id: this.id };
    expectBootstrapSchema('SledAgentResponse', response);
    return { status: 200, body: response };
  }
}

/** Answers PUT /services and PUT /filesystem with 204 after checking the body against the contract. */
export class FakeSledAgent extends FakeAgent {
  protected answer(req: RecordedRequest): Answer {
    if (req.method === 'PUT' && req.url === '/services') {
      expectSchema('sled-agent.json', 'ServiceEnsureBody', req.body);
      return { status: 204 };
    }
    if (req.method === 'PUT' && req.url === '/filesystem') {
      expectSchema('sled-agent.json', 'DatasetEnsureBody', req.body);
      return { status: 204 };
    }
    return { status: 404, body: { request_id: 'fake', message: 'not found' } };
  }
}

export interface FakeRack {
  log: RackLog;
  bootstrap: FakeBootstrapAgent[];
  sleds: FakeSledAgent[];
  stop(): Promise<void>;
}

/** `count` sleds, each a fake bootstrap agent (id from `ids`) and a fake sled agent. */
export async function startFakeRack(ids: string[]): Promise<FakeRack> {
  const log = new RackLog();
  const bootstrap = await Promise.all(ids.map((id, i) => new FakeBootstrapAgent(`bootstrap ${i}`, log, id).start()));
  const sleds = await Promise.all(ids.map((_, i) => new FakeSledAgent(`sled ${i}`, log).start()));
  return {
    log,
    bootstrap,
    sleds,
    stop: async () => {
      await Promise.all([...bootstrap, ...sleds].map((a) => a.stop()));
    },
  };
}
