// Configuration: the built-in default, TOML files overlaid on it, and the validation that names
// the bad field; the LOG_LEVEL override; socket addresses as omicron writes them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSocketAddr, parseSocketAddr } from '../src/common/address.js';
import { effectiveLevel } from '../src/logger.js';
import { ConfigError, DEFAULT_SLED_ID, checkSimConfig, defaultSimConfig, loadSimConfigFile } from '../src/sim/config.js';

let dir: string;
let fileCount = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sled-agent-config-test-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function tomlFile(text: string): string {
  const path = join(dir, `config-${++fileCount}.toml`);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError `fn` throws (failing the test if it throws something else or nothing). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, but the call returned normally');
}

describe('defaultSimConfig', () => {
  it('passes checkSimConfig unchanged', () => {
    const config = defaultSimConfig();
    expect(checkSimConfig(config, 'built-in default')).toEqual(defaultSimConfig());
  });

  it('is what `npm start` promises: 127.0.0.1:12345 reporting to 127.0.0.1:12221, auto mode, ten 1 TiB pools', () => {
    const config = defaultSimConfig();
    expect(config.id).toBe(DEFAULT_SLED_ID);
    expect(config.dropshot.bind_address).toBe('127.0.0.1:12345');
    expect(config.nexus_address).toBe('127.0.0.1:12221');
    expect(config.sim_mode).toBe('auto');
    expect(config.sim.auto_delay_ms).toBe(1500);
    expect(config.storage.zpools).toEqual(Array.from({ length: 10 }, () => ({ size: 2 ** 40 })));
    // Where the original's updates.rs writes artifacts, and Nexus's update test reads them back.
    expect(config.updates.artifact_dir).toBe('/var/tmp/zones');
  });

  it('returns a fresh object each time', () => {
    const a = defaultSimConfig();
    a.storage.zpools.push({ size: 1 });
    a.sim.auto_delay_ms = 1;
    expect(defaultSimConfig().storage.zpools).toHaveLength(10);
    expect(defaultSimConfig().sim.auto_delay_ms).toBe(1500);
  });
});

describe('loadSimConfigFile', () => {
  it('overlays the file on the default, keeping every field it does not set', () => {
    const path = tomlFile([
      'sim_mode = "explicit"',
      '',
      '[sim]',
      'auto_delay_ms = 10',
      '',
      '[[storage.zpools]]',
      'size = 1024',
      '',
      '[[storage.zpools]]',
      'id = "a9e2a0a8-1f5e-4b5b-9d7e-6c1f2b3d4e5f"',
      'size = 1099511627776',
      '',
    ].join('\n'));
    const config = loadSimConfigFile(path);
    const expected = defaultSimConfig();
    expected.sim_mode = 'explicit';
    expected.sim.auto_delay_ms = 10;
    expected.storage.zpools = [{ size: 1024 }, { id: 'a9e2a0a8-1f5e-4b5b-9d7e-6c1f2b3d4e5f', size: 2 ** 40 }];
    expect(JSON.parse(JSON.stringify(config))).toEqual(expected);
    // Fields of a table the file touched but did not set are kept.
    expect(config.storage.ip).toBe('127.0.0.1');
  });

  it('overlays a single field of a table', () => {
    const config = loadSimConfigFile(tomlFile('[dropshot]\nbind_address = "[::1]:0"\n[log]\nlevel = "debug"\n'));
    expect(config.dropshot.bind_address).toBe('[::1]:0');
    expect(config.dropshot.request_body_max_bytes).toBe(defaultSimConfig().dropshot.request_body_max_bytes);
    expect(config.log.level).toBe('debug');
    expect(config.nexus_address).toBe('127.0.0.1:12221');
  });

  it('overlays on a given base rather than the default', () => {
    const base = { ...defaultSimConfig(), nexus_address: '10.0.0.1:80' };
    const config = loadSimConfigFile(tomlFile('sim_mode = "explicit"\n'), base);
    expect(config.nexus_address).toBe('10.0.0.1:80');
    expect(config.sim_mode).toBe('explicit');
  });

  it('an empty file gives the default', () => {
    expect(JSON.parse(JSON.stringify(loadSimConfigFile(tomlFile(''))))).toEqual(defaultSimConfig());
  });

  it.each([
    ['a top-level field', 'colour = "blue"\n', ['unknown field', 'colour']],
    ['a field inside a table', '[sim]\nauto_delay_ms = 5\nspeed = 2\n', ['/sim', 'unknown field', 'speed']],
    ['a field of a zpool', '[[storage.zpools]]\nsize = 1\nname = "p0"\n', ['/storage/zpools/0', 'unknown field', 'name']],
  ])('refuses an unknown field: %s', (_label, text, fragments) => {
    const path = tomlFile(text);
    const err = configError(() => loadSimConfigFile(path));
    for (const f of fragments) expect(err.message).toContain(f);
    expect(err.message).toContain(path);
  });

  it('refuses a top-level "__proto__" table as an unknown field rather than merging it into the prototype', () => {
    const path = tomlFile('[__proto__]\nsim_mode = "explicit"\n');
    const outcome = (() => {
      try {
        const config = loadSimConfigFile(path);
        return `accepted, with prototype ${JSON.stringify(Object.getPrototypeOf(config))}`;
      } catch (err) {
        return err instanceof ConfigError ? err.message : `threw a non-ConfigError: ${String(err)}`;
      }
    })();
    expect(outcome).toMatch(/__proto__/);
    expect(outcome).not.toMatch(/^accepted|^threw a non-ConfigError/);
  });

  it.each([
    ['the sled id', 'id = "not-a-uuid"\n', '/id'],
    ['a zpool id', '[[storage.zpools]]\nid = "1234"\nsize = 1\n', '/storage/zpools/0/id'],
  ])('refuses a bad uuid in %s', (_label, text, field) => {
    const err = configError(() => loadSimConfigFile(tomlFile(text)));
    expect(err.message).toContain(field);
    expect(err.message).toContain('uuid');
  });

  it.each([
    ['nexus_address', 'nexus_address = "localhost:80"\n', 'localhost:80'],
    ['nexus_address', 'nexus_address = "1.2.3.4:70000"\n', '70000'],
    ['dropshot.bind_address', '[dropshot]\nbind_address = "localhost:80"\n', 'localhost:80'],
    ['dropshot.bind_address', '[dropshot]\nbind_address = "1.2.3.4:70000"\n', '70000'],
    ['dropshot.bind_address', '[dropshot]\nbind_address = "::1:80"\n', '::1:80'],
  ])('refuses a bad address in %s', (field, text, value) => {
    const err = configError(() => loadSimConfigFile(tomlFile(text)));
    expect(err.message).toContain(field);
    expect(err.message).toContain(value);
  });

  it.each([
    ['sim_mode', 'sim_mode = "manual"\n', '/sim_mode'],
    ['log.level', '[log]\nlevel = "loud"\n', '/log/level'],
    ['storage.ip', '[storage]\nip = "not-an-ip"\n', '/storage/ip'],
    ['sim.auto_delay_ms', '[sim]\nauto_delay_ms = "fast"\n', '/sim/auto_delay_ms'],
    ['zpool size', '[[storage.zpools]]\nsize = -1\n', '/storage/zpools/0/size'],
  ])('refuses a bad value of %s, naming it', (_label, text, field) => {
    const err = configError(() => loadSimConfigFile(tomlFile(text)));
    expect(err.message).toContain(field);
  });

  it('refuses two zpools with the same fixed id, naming it', () => {
    // Nexus would be told the same pool twice with different sizes, each with its own dataset.
    const id = 'a9e2a0a8-1f5e-4b5b-9d7e-6c1f2b3d4e5f';
    const path = tomlFile(`[[storage.zpools]]\nid = "${id}"\nsize = 1024\n\n[[storage.zpools]]\nid = "${id}"\nsize = 2048\n`);
    const outcome = (() => {
      try {
        loadSimConfigFile(path);
        return 'accepted';
      } catch (err) {
        return err instanceof ConfigError ? err.message : `threw a non-ConfigError: ${String(err)}`;
      }
    })();
    expect(outcome).toContain(id);
    expect(outcome).toContain('zpools');
  });

  it('refuses backoff_max_ms below backoff_initial_ms', () => {
    const err = configError(() => loadSimConfigFile(tomlFile('[nexus]\nbackoff_initial_ms = 100\nbackoff_max_ms = 10\n')));
    expect(err.message).toContain('backoff_max_ms');
  });

  it('reports a missing file as a ConfigError naming it', () => {
    const path = join(dir, 'does-not-exist.toml');
    const err = configError(() => loadSimConfigFile(path));
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/cannot read/);
  });

  it('reports invalid TOML as a ConfigError naming the file', () => {
    const path = tomlFile('sim_mode = "explicit\n[sim\n');
    const err = configError(() => loadSimConfigFile(path));
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/not valid TOML/);
  });
});

describe('checkSimConfig', () => {
  it('lists every bad field at once', () => {
    const config: any = defaultSimConfig();
    config.sim_mode = 'sometimes';
    config.log.level = 'chatty';
    const err = configError(() => checkSimConfig(config, 'test'));
    expect(err.message).toContain('/sim_mode');
    expect(err.message).toContain('/log/level');
    expect(err.message).toContain('(test)');
  });

  it('refuses a missing field', () => {
    const { updates: _dropped, ...config } = defaultSimConfig();
    const err = configError(() => checkSimConfig(config, 'test'));
    expect(err.message).toContain('updates');
  });
});

describe('effectiveLevel', () => {
  it('uses the configured level when LOG_LEVEL is unset or blank', () => {
    expect(effectiveLevel('warn', {})).toBe('warn');
    expect(effectiveLevel('debug', { LOG_LEVEL: '' })).toBe('debug');
    expect(effectiveLevel('debug', { LOG_LEVEL: '   ' })).toBe('debug');
  });

  it('lets LOG_LEVEL override the configured level', () => {
    expect(effectiveLevel('info', { LOG_LEVEL: 'trace' })).toBe('trace');
    expect(effectiveLevel('trace', { LOG_LEVEL: 'silent' })).toBe('silent');
    expect(effectiveLevel('info', { LOG_LEVEL: ' error ' })).toBe('error');
  });

  it('reads process.env by default', () => {
    const saved = process.env.LOG_LEVEL;
    try {
      process.env.LOG_LEVEL = 'fatal';
      expect(effectiveLevel('info')).toBe('fatal');
    } finally {
      if (saved === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = saved;
    }
  });

  it('throws on an invalid level, from the environment or the config, naming it', () => {
    expect(() => effectiveLevel('info', { LOG_LEVEL: 'verbose' })).toThrow(/verbose/);
    expect(() => effectiveLevel('loud', {})).toThrow(/loud/);
    // An invalid LOG_LEVEL is an error even when the configured level is fine, not silently ignored.
    expect(() => effectiveLevel('info', { LOG_LEVEL: 'INFO2' })).toThrow(/INFO2/);
  });
});

describe('parseSocketAddr / formatSocketAddr', () => {
  it.each([
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['127.0.0.1:12345', { host: '127.0.0.1', port: 12345 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
    ['[::1]:12345', { host: '::1', port: 12345 }],
    ['[fd00:1122:3344:101::1]:12345', { host: 'fd00:1122:3344:101::1', port: 12345 }],
    ['[::]:0', { host: '::', port: 0 }],
  ])('accepts %s and formats it back', (text, addr) => {
    expect(parseSocketAddr(text)).toEqual(addr);
    expect(formatSocketAddr(addr)).toBe(text);
  });

  it.each([
    '::1:80',
    '[127.0.0.1]:80',
    'host:80',
    'localhost:80',
    '1.2.3.4',
    '1.2.3.4:99999',
    '1.2.3.4:65536',
    '1.2.3.4:',
    ':80',
    '[::1]',
    '[::1]:',
    '[::1]:123456',
    '1.2.3.4:80 ',
    ' 1.2.3.4:80',
    '256.1.1.1:80',
    '',
  ])('rejects %j with an error quoting it', (text) => {
    expect(() => parseSocketAddr(text)).toThrow(Error);
    expect(() => parseSocketAddr(text)).toThrow(JSON.stringify(text));
  });
});
