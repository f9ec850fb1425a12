// A local rack in one command: `npm run rack -- --sleds 4 [--real] [--nexus ADDR:PORT] [--state-dir DIR]`.
// --real: each sled runs the real sled agent on a simulated host (zones, OPTE ports and the
// modelled dataplane, so POST /sim/net/trace works), instead of the simulated sled agent.
// Starts one bootstrap agent per sled on loopback (each with its trust-quorum share), writes a
// config-rss.toml for them, runs RSS (which starts every sled agent, then its services and
// datasets), rebuilds the rack secret from the peers, prints each sled, and runs until Ctrl-C.
// Without --nexus a built-in fake Nexus (answering 204 to everything) is started and said so.
// RSS itself never calls Nexus, so whether Nexus heard from the sleds is checked separately: each
// sled agent's registration is given --nexus-wait seconds, and stdout says if Nexus did not answer.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { stringify } from 'smol-toml';
import { checkBootstrapConfig } from '../src/bootstrap/config.js';
import { startBootstrap, type RunningBootstrap } from '../src/bootstrap/server.js';
import { createRackSecret, writeShareFile } from '../src/bootstrap/trust-quorum.js';
import { parseSocketAddr } from '../src/common/address.js';
import { addressInSubnet, formatRackSetupSummary, runRackSetup, sledSubnet } from '../src/rack-setup/index.js';

const USAGE = 'usage: npm run rack -- --sleds N [--real] [--nexus ADDR:PORT] [--nexus-wait SECONDS] [--state-dir DIR] [--sim-mode auto|explicit]';
const RACK_SUBNET = 'fd00:1122:3344:0100::';

function fail(message: string): never {
  process.stderr.write(`rack: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      sleds: { type: 'string', default: '4' },
      nexus: { type: 'string' },
      'nexus-wait': { type: 'string', default: '10' },
      'state-dir': { type: 'string' },
      'sim-mode': { type: 'string', default: 'auto' },
      real: { type: 'boolean', default: false },
    },
  }).values;
} catch (err) {
  fail((err as Error).message);
}
const sleds = Number(args.sleds);
if (!Number.isInteger(sleds) || sleds < 1 || sleds > 32) fail(`--sleds must be an integer from 1 to 32, not "${args.sleds}"`);
if (args['sim-mode'] !== 'auto' && args['sim-mode'] !== 'explicit') fail(`--sim-mode must be auto or explicit`);
const nexusWaitS = Number(args['nexus-wait']);
if (!(nexusWaitS >= 0) || !Number.isFinite(nexusWaitS)) fail(`--nexus-wait must be a number of seconds, not "${args['nexus-wait']}"`);
if (args.nexus !== undefined) {
  try { parseSocketAddr(args.nexus); } catch (err) { fail(`--nexus: ${(err as Error).message}`); }
}

const stateDir = args['state-dir'] ?? mkdtempSync(join(tmpdir(), 'sled-agent-rack-'));
mkdirSync(stateDir, { recursive: true });
const logPath = join(stateDir, 'rack.log');
const log = pino({ level: process.env.LOG_LEVEL ?? 'info' }, pino.destination({ dest: logPath, mkdir: true, sync: true }));
const say = (line: string) => process.stdout.write(`${line}\n`);

/** A free loopback port, found by binding port 0 (the agents bind it again a moment later). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function builtInNexus(): Promise<{ server: Server; address: string; count: () => number }> {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests += 1;
      log.info({ method: req.method, url: req.url }, 'fake Nexus: request');
      res.writeHead(req.method === 'PUT' && /\/(zpools|dataset)\//.test(req.url ?? '') ? 200 : 204, { 'content-type': 'application/json' });
      res.end(req.method === 'PUT' && /\/(zpools|dataset)\//.test(req.url ?? '') ? '{}' : undefined);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { server, address: `127.0.0.1:${port}`, count: () => requests };
}

const nexus = args.nexus === undefined ? await builtInNexus() : null;
const nexusAddress = args.nexus ?? nexus!.address;
say(nexus
  ? `Nexus: none given, so a built-in fake Nexus at ${nexusAddress} answers every call with success`
  : `Nexus: ${nexusAddress}`);

// One share per sled; a majority of the rack rebuilds the secret (a single sled has no quorum).
const threshold = Math.max(2, Math.floor(sleds / 2) + 1);
const quorum = sleds >= 2 ? await createRackSecret(threshold, sleds) : null;

const plan = await Promise.all(Array.from({ length: sleds }, async (_, i) => ({
  index: i,
  id: randomUUID(),
  zpools: [randomUUID(), randomUUID()],
  bootstrap: `127.0.0.1:${await freePort()}`,
  sled: `127.0.0.1:${await freePort()}`,
  dir: join(stateDir, `sled-${i}`),
})));

const agents: RunningBootstrap[] = [];

/** How many sled agents have had no answer from Nexus to their registration after `ms`. */
async function unregisteredSleds(ms: number): Promise<number> {
  let answered = 0;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(agents.map((a) => a.agent.sledAgent?.registered.then(() => { answered += 1; }))),
    new Promise((resolve) => { timer = setTimeout(resolve, ms); }),
  ]);
  clearTimeout(timer);
  return agents.length - answered;
}

async function shutdown(code: number): Promise<never> {
  await Promise.allSettled(agents.map((a) => a.close()));
  nexus?.server.closeAllConnections();
  nexus?.server.close();
  process.exit(code);
}
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    say('stopping the rack');
    void shutdown(0);
  });
}

try {
  for (const sled of plan) {
    mkdirSync(sled.dir, { recursive: true });
    const shareFile = join(sled.dir, 'share.json');
    if (quorum) await writeShareFile(shareFile, quorum.distributions[sled.index]!);
    const others = plan.filter((p) => p !== sled);
    // The real agent reads a config file (the bootstrap agent sets its id, address and underlay).
    const realConfig = join(sled.dir, 'sled-agent.toml');
    if (args.real) {
      writeFileSync(realConfig, stringify({
        id: sled.id,
        nexus_address: nexusAddress,
        zpools: sled.zpools.map((id) => `oxp_${id}`),
        data_dir: join(sled.dir, 'var-oxide'),
        host: { backend: 'sim', state_dir: join(sled.dir, 'sim-host'), latency: 'zero' },
        updates: { artifact_dir: join(sled.dir, 'zones') },
      }));
    }
    agents.push(await startBootstrap(checkBootstrapConfig({
      id: sled.id,
      bind_address: sled.bootstrap,
      data_dir: sled.dir,
      sled_address: sled.sled,
      ...(args.real ? { sled_agent_config: realConfig } : {
        sled_agent: {
          nexus_address: nexusAddress,
          sim_mode: args['sim-mode'],
          storage: { ip: '127.0.0.1', zpools: sled.zpools.map((id) => ({ id, size: 2 ** 40 })) },
          updates: { artifact_dir: join(sled.dir, 'zones') },
        },
      }),
      ...(quorum ? {
        trust_quorum: {
          share_file: shareFile,
          peers: others.map((p) => p.bootstrap),
          allowed_identities: others.map((p) => p.id),
        },
      } : {}),
    }, `sled ${sled.index}`), log.child({ sled: sled.index })));
  }

  // The RSS configuration, in the original's format plus where each sled's agents listen.
  const rssConfig = {
    rack_subnet: RACK_SUBNET,
    request: plan.map((sled) => {
      const net = sledSubnet(RACK_SUBNET, sled.index);
      const at = (index: number) => addressInSubnet(net, index);
      return {
        bootstrap_address: sled.bootstrap,
        sled_address: sled.sled,
        dataset: [
          ...sled.zpools.map((zpool_id, j) => ({ zpool_id, address: `[${at(j + 6)}]:32345`, dataset_kind: { type: 'crucible' } })),
          ...(sled.index === 0 ? [
            { zpool_id: sled.zpools[0], address: `[${at(2)}]:32221`, dataset_kind: { type: 'cockroach_db', all_addresses: [`[${at(2)}]:32221`] } },
            { zpool_id: sled.zpools[0], address: `[${at(5)}]:8123`, dataset_kind: { type: 'clickhouse' } },
          ] : []),
        ],
        service: sled.index === 0
          ? [{ name: 'nexus', addresses: [at(3)], gz_addresses: [] }, { name: 'oximeter', addresses: [at(4)], gz_addresses: [] }]
          : [],
      };
    }),
  };
  const rssPath = join(stateDir, 'config-rss.toml');
  writeFileSync(rssPath, stringify(rssConfig));

  const result = await runRackSetup(rssPath, join(stateDir, 'rss'), log.child({ component: 'rss' }));
  say(formatRackSetupSummary(result));
  const silent = await unregisteredSleds(nexusWaitS * 1000);
  say(silent === 0
    ? `Nexus at ${nexusAddress} answered the registration of every sled agent`
    : `Nexus at ${nexusAddress} has not answered: ${silent} of ${sleds} sled agent(s) not registered after ${nexusWaitS} s, `
      + `so Nexus knows nothing of this rack yet; the sled agents keep retrying (see ${logPath})`);

  if (quorum) {
    const rebuilt = await agents[0]!.agent.establishQuorum();
    const ok = Buffer.from(rebuilt.secret).equals(Buffer.from(quorum.secret));
    say(`trust quorum: sled 0 rebuilt the rack secret from its share and ${rebuilt.used.length} peer share(s) `
      + `(threshold ${threshold} of ${sleds})${ok ? '' : ' BUT IT DOES NOT MATCH'}`);
    if (!ok) await shutdown(1);
  } else {
    say('trust quorum: a single sled has no peers; skipped');
  }
  say(`state and configs: ${stateDir}; logs: ${logPath}`);
  say('rack ready; Ctrl-C stops it');
} catch (err) {
  process.stderr.write(`rack: ${(err as Error).message}\n(logs: ${logPath})\n`);
  await shutdown(1);
}
