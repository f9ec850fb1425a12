#!/usr/bin/env node
// The sled-agent command: `sim` runs a simulated sled agent, `openapi` prints the API documents.
// Usage errors print the usage text to stderr and exit 2 (EXIT_USAGE, as the original does).
import { Command, CommanderError, Option } from 'commander';
import { parseSocketAddr } from '../common/address.js';
import { createLogger, effectiveLevel } from '../logger.js';
import { openApiDocument } from '../openapi.js';
import {
  ConfigError, checkSimConfig, defaultSimConfig, loadSimConfigFile, type SimConfig,
} from '../sim/config.js';
import { buildSim, startSim } from '../sim/server.js';
import pino from 'pino';

const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

class UsageError extends Error {}

function program(): Command {
  const cli = new Command('sled-agent')
    .description('Oxide-style sled agent (TypeScript)')
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
    .action(async (sledId: string, bind: string, nexus: string, opts: { simMode?: 'auto' | 'explicit'; config?: string }) => {
      for (const [what, value] of [['BIND_ADDR:PORT', bind], ['NEXUS_ADDR:PORT', nexus]] as const) {
        try {
          parseSocketAddr(value);
        } catch (err) {
          throw new UsageError(`${what}: ${(err as Error).message}`);
        }
      }
      const base = opts.config ? loadSimConfigFile(opts.config) : defaultSimConfig();
      const config = checkSimConfig({
        ...base,
        id: sledId,
        nexus_address: nexus,
        sim_mode: opts.simMode ?? base.sim_mode,
        dropshot: { ...base.dropshot, bind_address: bind },
      }, 'command line');
      await runSim(config);
    });

  cli.command('openapi')
    .description('print the OpenAPI document of an API this agent serves')
    .argument('<API>', 'which API: sled')
    .action(async (api: string) => {
      if (api !== 'sled') throw new UsageError(`unknown API "${api}": try one of {sled}`);
      const { app } = await buildSim(defaultSimConfig(), pino({ level: 'silent' }));
      process.stdout.write(`${JSON.stringify(await openApiDocument(app), null, 2)}\n`);
      await app.close();
    });

  return cli;
}

async function runSim(config: SimConfig): Promise<void> {
  const log = createLogger(effectiveLevel(config.log.level));
  // Handlers go in before the "listening" line: a supervisor may signal the moment it reads it.
  const starting = startSim(config, log);
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
    starting.then((sim) => sim.close()).then(() => process.exit(0), (err) => {
      log.error({ err }, 'error during shutdown');
      process.exit(EXIT_FAILURE);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const sim = await starting;
  process.stdout.write(`listening on http://${sim.address}\n`);
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
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\n\n${cli.helpInformation()}`);
      process.exit(EXIT_USAGE);
    }
    process.stderr.write(`sled-agent: ${(err as Error).message ?? String(err)}\n`);
    process.exit(EXIT_FAILURE);
  }
}

await main(process.argv.slice(2));
