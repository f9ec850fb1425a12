#!/usr/bin/env node
// The sled-agent command: `run` runs the real agent, `sim` a simulated sled agent, `bootstrap`
// and `rss` the rack's start-up, `openapi` prints the API documents.
// Usage errors print the command's usage to stderr and exit 2 (EXIT_USAGE, as the original
// does); a bad configuration exits 2 too, with only its own message (every bad field named).
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { parseSocketAddr } from '../common/address.js';
import { lockAgentDirectories, simHostLock } from '../common/dir-lock.js';
import { tuneV8 } from '../common/v8-tuning.js';
import { createLogger, effectiveLevel } from '../logger.js';
import {
  ConfigError, DEFAULT_SLED_ID, checkSimConfig, defaultSimConfig, loadSimConfigFile, readTomlFile, type SimConfig,
} from '../sim/config.js';
import { loadAgentConfigFile } from '../config.js';
import { checkBootstrapConfig, defaultBootstrapConfig, loadBootstrapConfigFile } from '../bootstrap/config.js';
import { loadRssConfig } from '../rack-setup/config.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';

// Before any work: see v8-tuning.ts.
tuneV8();

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;
/** From the first signal to exit, at most; more than the agents' own shutdown steps add up to. */
const SHUTDOWN_DEADLINE_MS = 30_000;

/** The arguments of `command` are wrong: its usage follows the message. */
class UsageError extends Error {
  constructor(message: string, readonly command: Command) {
    super(message);
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const SERVING_HELP = `
SIGINT or SIGTERM stops it gracefully (a second signal, at once).
Exit status: 0 once stopped, 1 if it failed or its shutdown did not complete,
2 for wrong arguments or a bad configuration.`;

function program(): Command {
  const cli = new Command('sled-agent')
    .description('Oxide-style sled agent (TypeScript)')
    .version(`sled-agent ${VERSION}`, '-V, --version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError(true);

  cli.command('sim')
    .description('run a simulated sled agent')
    .argument('<SLED_ID>', 'uuid of this sled')
    .argument('<BIND_ADDR:PORT>', 'address to serve the sled agent API on, IPV4:PORT or [IPV6]:PORT (port 0 picks one)')
    .argument('<NEXUS_ADDR:PORT>', 'address of the Nexus internal API')
    .addOption(new Option('--sim-mode <mode>', 'how simulated state advances').choices(['auto', 'explicit']))
    .option('--config <FILE>', 'TOML file overriding the built-in defaults (storage, delays, log, ...)')
    .addHelpText('after', `
Once listening it prints "listening on http://ADDR:PORT" on stdout; logs are JSON lines on stderr.
${SERVING_HELP}

Example:
  sled-agent sim fb0f7546-4d46-40ca-9d56-cbb810684ca7 127.0.0.1:12345 127.0.0.1:12221 --sim-mode explicit`)
    .action(async (sledId: string, bind: string, nexus: string, opts: { simMode?: 'auto' | 'explicit'; config?: string }, command: Command) => {
      for (const [what, value] of [['BIND_ADDR:PORT', bind], ['NEXUS_ADDR:PORT', nexus]] as const) {
        try {
          parseSocketAddr(value);
        } catch (err) {
          throw new UsageError(`${what}: ${(err as Error).message}`, command);
        }
      }
      const base = opts.config ? loadSimConfigFile(opts.config) : defaultSimConfig();
      // The Crucible agents serve where the sled agent does, as sled-agent-sim sets storage.ip
      // from its address: Nexus is told their addresses and must reach them. A file's own
      // storage.ip wins.
      const fileIp = opts.config ? (readTomlFile(opts.config).storage as { ip?: unknown } | undefined)?.ip : undefined;
      const storage = fileIp === undefined ? { ...base.storage, ip: parseSocketAddr(bind).host } : base.storage;
      let config: SimConfig;
      try {
        config = checkSimConfig({
          ...base,
          id: sledId,
          nexus_address: nexus,
          sim_mode: opts.simMode ?? base.sim_mode,
          dropshot: { ...base.dropshot, bind_address: bind },
          storage,
        }, 'command line');
      } catch (err) {
        // The file, if any, was checked as it was read: what is wrong here is an argument.
        if (err instanceof ConfigError) throw new UsageError(err.message, command);
        throw err;
      }
      await runSim(config);
    });

  cli.command('run')
    .description('run the sled agent on this machine (the illumos host, or the simulated host where illumos is absent)')
    .argument('<CONFIG_FILE>', 'sled agent configuration (TOML; the original\'s format plus [host], [zones], [instances])')
    .addHelpText('after', `
It refuses to start while another sled agent holds its data_dir (or the simulated host's
state_dir). Once listening it prints "listening on http://ADDR:PORT" on stdout; logs are JSON
lines on stderr.
${SERVING_HELP}

Example:
  sled-agent run config/sled-agent.toml`)
    .action(async (path: string) => {
      const config = loadAgentConfigFile(path);
      const log = createLogger(effectiveLevel(config.log.level));
      // Held until the process exits, which drops them however it exits.
      const locks = lockAgentDirectories(config);
      const { openHost } = await import('../host/open.js');
      const { startAgent } = await import('../sled-agent.js');
      const starting = openHost(config, log, { simHostLock: simHostLock(locks) }).then((host) => startAgent(config, host, log).catch(async (err: unknown) => {
        await host.close();
        throw err;
      }));
      await serveUntilSignalled(log, starting);
    });

  cli.command('bootstrap')
    .description('run a bootstrap agent, which starts this sled\'s sled agent when RSS asks')
    .argument('<CONFIG_FILE>', 'bootstrap agent configuration (TOML)')
    .addHelpText('after', `
It refuses to start while another bootstrap agent holds its data_dir.
${SERVING_HELP}`)
    .action(async (path: string) => {
      const config = loadBootstrapConfigFile(path);
      const log = createLogger(effectiveLevel(config.sled_agent.log.level));
      const { startBootstrap } = await import('../bootstrap/server.js');
      await serveUntilSignalled(log, startBootstrap(config, log));
    });

  cli.command('rss')
    .description('run the rack setup service: start every listed sled, then its services and datasets')
    .argument('<CONFIG_FILE>', 'config-rss.toml (the original format, with bootstrap_address per [[request]])')
    .option('--state-dir <DIR>', 'where the plan is kept (resumed if half done)', join(tmpdir(), 'sled-agent-rss'))
    .action(async (path: string, opts: { stateDir: string }) => {
      const config = loadRssConfig(path);
      const log = createLogger(effectiveLevel('info'));
      const abort = new AbortController();
      const stop = () => abort.abort(new Error('interrupted; the plan keeps what was done'));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const { formatRackSetupSummary, runRackSetup } = await import('../rack-setup/index.js');
      const result = await runRackSetup(config, opts.stateDir, log, { signal: abort.signal });
      process.stdout.write(`${formatRackSetupSummary(result)}\n`);
      log.flush();
    });

  cli.command('openapi')
    .description('print the OpenAPI document of an API this agent serves')
    .argument('<API>', 'which API: sled (the real agent), sim (the simulated agent, with its poke endpoints) or bootstrap')
    .action(async (api: string, _opts: unknown, command: Command) => {
      const silent = pino({ level: 'silent' });
      // Imported here, as in each command: a usage error should not wait for every module to load.
      const { openApiDocument } = await import('../openapi.js');
      let app;
      if (api === 'sled') {
        const { agentApp } = await import('../sled-agent.js');
        app = await agentApp(null, silent);
      } else if (api === 'sim') {
        const { buildSim } = await import('../sim/server.js');
        app = (await buildSim(defaultSimConfig(), silent)).app;
      } else if (api === 'bootstrap') {
        const id = DEFAULT_SLED_ID;
        const { buildBootstrap } = await import('../bootstrap/server.js');
        app = (await buildBootstrap(checkBootstrapConfig({ ...defaultBootstrapConfig(id) }, 'defaults'), silent)).app;
      } else {
        throw new UsageError(`unknown API "${api}": try one of {sled, sim, bootstrap}`, command);
      }
      // A reader that stops early (`| head`) is no error: the document was wanted only so far.
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') process.exit(0);
        throw err;
      });
      process.stdout.write(`${JSON.stringify(await openApiDocument(app), null, 2)}\n`);
      await app.close();
    });

  return cli;
}

async function runSim(config: SimConfig): Promise<void> {
  const log = createLogger(effectiveLevel(config.log.level));
  const { startSim } = await import('../sim/server.js');
  await serveUntilSignalled(log, startSim(config, log));
}

/**
 * Waits for a server to start, prints "listening on http://ADDR", and stops it gracefully on
 * SIGINT/SIGTERM. Handlers go in before the line is printed: a supervisor may signal the moment
 * it reads it.
 */
async function serveUntilSignalled(log: Logger, starting: Promise<{ address: string; close(): Promise<void> }>): Promise<void> {
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (firstSignalAt !== 0) {
      // One Ctrl-C reaches us twice under `npm start` (from the terminal's process group and
      // relayed by npm), so only a signal well after the first means "stop waiting".
      if (now - firstSignalAt < 1000) return;
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT_FAILURE);
    }
    firstSignalAt = now;
    log.info({ signal }, 'shutting down');
    // Every step of close() has its own deadline; this one also covers a start still under way.
    setTimeout(() => {
      log.error({ ms: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time; exiting');
      process.exit(EXIT_FAILURE);
    }, SHUTDOWN_DEADLINE_MS);
    starting.then((server) => server.close()).then(() => process.exit(0), (err) => {
      log.error({ err }, 'error during shutdown');
      process.exit(EXIT_FAILURE);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const server = await starting;
  process.stdout.write(`listening on http://${server.address}\n`);
}

async function main(argv: string[]): Promise<void> {
  const cli = program();
  if (argv.length === 0) {
    process.stderr.write(cli.helpInformation());
    process.exit(EXIT_USAGE);
  }
  try {
    await cli.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; every parse error is a usage error.
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    }
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n\n${err.command.helpInformation()}`);
      process.exit(EXIT_USAGE);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    process.stderr.write(`sled-agent: ${(err as Error).message ?? String(err)}\n`);
    process.exit(EXIT_FAILURE);
  }
}

await main(process.argv.slice(2));
