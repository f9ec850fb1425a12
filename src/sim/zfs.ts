// ZFS on the simulated host: the pools it was given and the filesystems in them, with the
// subset of native properties the fake illumos knows (test/fake-illumos/zfs.c), user properties,
// inheritance, and libzfs's error codes (as the illumos backend's zfs.ts over libzfs). The
// filesystems are persisted; every pool has its root filesystem.
import { randomInt } from 'node:crypto';
import { hostError, type PoolInfo } from '../host/index.js';
import {
  InvalidDatasetNameError,
  isUserPropertyName,
  parentDataset,
  validateDatasetName,
  validatePropertyMap,
} from '../host/names.js';
import type { SimMachine } from './machine.js';

export interface SimPoolConfig {
  /** "rpool", "oxp_<uuid>", ... */
  name: string;
  /** Bytes. */
  size: number | bigint;
  /** Default "ONLINE". */
  health?: string;
}

export interface DatasetRecord {
  /** Locally set properties (canonical values) and user properties. */
  props: Record<string, string>;
  creation: number;
  guid: string;
}

/** What every filesystem "uses" (as the fake illumos's zfs). */
const DATASET_BYTES = 24n * 1024n;

// ---- ZFS properties (the subset the fake illumos knows) ----

interface PropDesc {
  readonly?: boolean;
  inherit?: boolean;
  def?: string;
  values?: readonly string[];
  number?: boolean;
}

const ON_OFF = ['on', 'off'] as const;
const ZFS_PROPS: Record<string, PropDesc> = {
  type: { readonly: true },
  creation: { readonly: true },
  used: { readonly: true },
  available: { readonly: true },
  referenced: { readonly: true },
  compressratio: { readonly: true },
  mounted: { readonly: true },
  origin: { readonly: true },
  name: { readonly: true },
  guid: { readonly: true },
  quota: { def: '0', number: true },
  reservation: { def: '0', number: true },
  refquota: { def: '0', number: true },
  refreservation: { def: '0', number: true },
  recordsize: { def: '131072', inherit: true, number: true },
  mountpoint: { inherit: true },
  sharenfs: { def: 'off', inherit: true },
  checksum: { def: 'on', inherit: true, values: ['on', 'off', 'fletcher2', 'fletcher4', 'sha256', 'noparity', 'sha512', 'skein', 'edonr'] },
  compression: { def: 'off', inherit: true, values: ['on', 'off', 'lzjb', 'gzip', ...Array.from({ length: 9 }, (_, i) => `gzip-${i + 1}`), 'zle', 'lz4'] },
  atime: { def: 'on', inherit: true, values: ON_OFF },
  devices: { def: 'on', inherit: true, values: ON_OFF },
  exec: { def: 'on', inherit: true, values: ON_OFF },
  setuid: { def: 'on', inherit: true, values: ON_OFF },
  readonly: { def: 'off', inherit: true, values: ON_OFF },
  zoned: { def: 'off', inherit: true, values: ON_OFF },
  snapdir: { def: 'hidden', inherit: true, values: ['hidden', 'visible'] },
  canmount: { def: 'on', values: ['on', 'off', 'noauto'] },
  xattr: { def: 'on', inherit: true, values: ON_OFF },
  copies: { def: '1', inherit: true, values: ['1', '2', '3'] },
  logbias: { def: 'latency', inherit: true, values: ['latency', 'throughput'] },
  sync: { def: 'standard', inherit: true, values: ['standard', 'always', 'disabled'] },
};
const ZFS_ALIASES: Record<string, string> = {
  avail: 'available', refer: 'referenced', ratio: 'compressratio', reserv: 'reservation',
  recsize: 'recordsize', compress: 'compression', rdonly: 'readonly', refreserv: 'refreservation',
};

/** zfs_nicestrtonum: "10G" -> "10737418240"; null if it is not a size. */
function nicestrtonum(value: string): string | null {
  const m = /^(\d+(?:\.\d+)?)([KMGTPEZ]?)(?:B|iB)?$/i.exec(value.trim());
  if (!m) return null;
  const power = 'BKMGTPEZ'.indexOf((m[2] || 'B').toUpperCase());
  const [whole, frac = ''] = m[1]!.split('.');
  const scale = 1024n ** BigInt(power);
  let n = BigInt(whole!) * scale;
  if (frac !== '') n += (BigInt(frac) * scale) / 10n ** BigInt(frac.length);
  return n.toString();
}

export class SimZfs {
  readonly pools: ReadonlyMap<string, { size: bigint; health: string }>;
  /** Persisted, by name. */
  datasets: Record<string, DatasetRecord> = {};

  constructor(
    private readonly m: SimMachine,
    pools: readonly SimPoolConfig[],
  ) {
    const map = new Map<string, { size: bigint; health: string }>();
    for (const p of pools) {
      validateDatasetName(p.name);
      if (p.name.includes('/')) throw new TypeError(`pool name ${p.name} must not contain "/"`);
      map.set(p.name, { size: BigInt(p.size), health: p.health ?? 'ONLINE' });
    }
    this.pools = map;
  }

  /** The persisted filesystems, and a root filesystem for every pool that has none yet. */
  restore(datasets: Record<string, DatasetRecord>): void {
    this.datasets = datasets;
    for (const [name] of this.pools) {
      this.datasets[name] ??= { props: {}, creation: Math.floor(Date.now() / 1000), guid: randomGuid() };
    }
  }

  exists(name: string): boolean {
    return this.lookupDataset(validateDatasetName(name)) !== undefined;
  }

  private lookupDataset(name: string): DatasetRecord | undefined {
    const pool = name.split('/')[0]!;
    if (!this.pools.has(pool)) return undefined;
    return this.datasets[name];
  }

  private requireDataset(name: string, action: string): DatasetRecord {
    const ds = this.lookupDataset(name);
    if (ds === undefined) throw hostError('EZFS_NOENT', `${action}: dataset does not exist`);
    return ds;
  }

  private descendants(name: string): string[] {
    const prefix = `${name}/`;
    return Object.keys(this.datasets).filter((n) => n.startsWith(prefix));
  }

  /** Checks and canonicalises properties for create/set (zfs_valid_proplist). */
  private validProps(props: Record<string, string>, action: string): Record<string, string> {
    const checked = validatePropertyMap(props);
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(checked)) {
      if (isUserPropertyName(key)) {
        out[key] = value;
        continue;
      }
      const canonical = ZFS_ALIASES[key] ?? key;
      const desc = ZFS_PROPS[canonical];
      if (desc === undefined) throw hostError('EZFS_BADPROP', `${action}: invalid property '${key}'`);
      if (desc.readonly) throw hostError('EZFS_PROPREADONLY', `${action}: '${key}' is readonly`);
      if (desc.values !== undefined && !desc.values.includes(value)) {
        throw hostError('EZFS_BADPROP', `${action}: '${key}' must be one of '${desc.values.join(' | ')}'`);
      }
      if (desc.number) {
        const n = value === 'none' ? '0' : nicestrtonum(value);
        if (n === null) throw hostError('EZFS_BADPROP', `${action}: bad numeric value '${value}'`);
        out[canonical] = n;
        continue;
      }
      if (canonical === 'mountpoint' && !(value.startsWith('/') || value === 'none' || value === 'legacy')) {
        throw hostError('EZFS_BADPROP', `${action}: 'mountpoint' must be an absolute path, 'none', or 'legacy'`);
      }
      out[canonical] = value;
    }
    return out;
  }

  async createDataset(name: string, props: Record<string, string> = {}): Promise<void> {
    validateDatasetName(name);
    if (parentDataset(name) === null) throw new InvalidDatasetNameError(name, 'a pool name alone: a dataset needs a parent');
    const action = `cannot create '${name}'`;
    const valid = this.validProps(props, action);
    await this.m.opened();
    await this.m.sleep(this.m.lat('dataset'));
    const pool = name.split('/')[0]!;
    if (!this.pools.has(pool)) throw hostError('EZFS_NOENT', `${action}: no such pool '${pool}'`);
    if (this.lookupDataset(parentDataset(name)!) === undefined) throw hostError('EZFS_NOENT', `${action}: parent does not exist`);
    if (this.lookupDataset(name) !== undefined) throw hostError('EZFS_EXISTS', `${action}: dataset already exists`);
    this.datasets[name] = { props: valid, creation: Math.floor(Date.now() / 1000), guid: randomGuid() };
    await this.m.persist();
  }

  async setDataset(name: string, props: Record<string, string>): Promise<void> {
    validateDatasetName(name);
    const action = `cannot set property for '${name}'`;
    const valid = this.validProps(props, action);
    await this.m.opened();
    await this.m.sleep(this.m.lat('dataset'));
    const ds = this.requireDataset(name, action);
    Object.assign(ds.props, valid);
    await this.m.persist();
  }

  async getDataset(name: string, props: readonly string[]): Promise<Record<string, string | null>> {
    validateDatasetName(name);
    if (!Array.isArray(props) || props.some((p) => typeof p !== 'string' || p.length === 0)) {
      throw new TypeError('props must be an array of property names');
    }
    await this.m.opened();
    const action = `cannot get properties of '${name}'`;
    const ds = this.requireDataset(name, action);
    const out: Record<string, string | null> = {};
    for (const asked of props) {
      if (isUserPropertyName(asked)) {
        out[asked] = this.inherited(name, asked);
        continue;
      }
      const prop = ZFS_ALIASES[asked] ?? asked;
      if (ZFS_PROPS[prop] === undefined) throw hostError('EZFS_BADPROP', `${action}: invalid property '${asked}'`);
      out[asked] = this.propValue(name, ds, prop);
    }
    return out;
  }

  /** A property's own value, else the nearest ancestor's; null if none has it. */
  private inherited(name: string, prop: string): string | null {
    for (let n: string | null = name; n !== null; n = parentDataset(n)) {
      const v = this.datasets[n]?.props[prop];
      if (v !== undefined) return v;
    }
    return null;
  }

  private propValue(name: string, ds: DatasetRecord, prop: string): string | null {
    const pool = name.split('/')[0]!;
    const used = DATASET_BYTES * BigInt(1 + this.descendants(name).length);
    switch (prop) {
      case 'type': return 'filesystem';
      case 'name': return name;
      case 'creation': return String(ds.creation);
      case 'guid': return ds.guid;
      case 'compressratio': return '1.00x';
      case 'origin': return null;
      case 'used': return used.toString();
      case 'referenced': return DATASET_BYTES.toString();
      case 'available': {
        const size = this.pools.get(pool)!.size;
        const alloc = DATASET_BYTES * BigInt(1 + this.descendants(pool).length);
        let avail = size > alloc ? size - alloc : 0n;
        const quota = BigInt(ds.props.quota ?? '0');
        if (quota !== 0n) {
          const room = quota > used ? quota - used : 0n;
          if (room < avail) avail = room;
        }
        return avail.toString();
      }
      case 'mounted': {
        const mp = this.propValue(name, ds, 'mountpoint');
        const mountable = mp !== 'none' && mp !== 'legacy'
          && this.propValue(name, ds, 'canmount') !== 'off' && this.propValue(name, ds, 'zoned') !== 'on';
        return mountable ? 'yes' : 'no';
      }
      default:
        break;
    }
    const own = ds.props[prop];
    if (own !== undefined) return own;
    const desc = ZFS_PROPS[prop]!;
    if (desc.inherit) {
      for (let anc = parentDataset(name); anc !== null; anc = parentDataset(anc)) {
        const v = this.datasets[anc]?.props[prop];
        if (v === undefined) continue;
        if (prop === 'mountpoint' && v.startsWith('/')) return `${v === '/' ? '' : v}/${name.slice(anc.length + 1)}`;
        return v;
      }
    }
    if (prop === 'mountpoint') return `/${name}`;
    return desc.def ?? null;
  }

  async listChildren(parent: string): Promise<string[]> {
    validateDatasetName(parent);
    await this.m.opened();
    this.requireDataset(parent, `cannot list '${parent}'`);
    const prefix = `${parent}/`;
    return Object.keys(this.datasets)
      .filter((n) => n.startsWith(prefix) && !n.slice(prefix.length).includes('/'))
      .sort();
  }

  async destroyDataset(name: string): Promise<void> {
    validateDatasetName(name);
    await this.m.opened();
    const action = `cannot destroy '${name}'`;
    await this.m.sleep(this.m.lat('dataset'));
    this.requireDataset(name, action);
    if (parentDataset(name) === null) throw hostError('EZFS_BADTYPE', `${action}: operation does not apply to pools`);
    if (this.descendants(name).length > 0) throw hostError('EZFS_EXISTS', `${action}: dataset already exists (it has children)`);
    delete this.datasets[name];
    await this.m.persist();
  }

  listPools(): PoolInfo[] {
    return [...this.pools].map(([name, p]) => {
      const allocated = DATASET_BYTES * BigInt(1 + this.descendants(name).length);
      return { name, size: p.size, allocated, free: p.size > allocated ? p.size - allocated : 0n, health: p.health };
    });
  }
}

function randomGuid(): string {
  return (BigInt(randomInt(1, 2 ** 48 - 1)) * 65536n + BigInt(randomInt(0, 65535))).toString();
}
