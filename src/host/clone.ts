// When `zoneadm -z NAME clone SOURCE` refuses, and with which words: both backends check this
// before cloning, so that the agent sees the same code and message from either, as zoneadm itself
// decides it (illumos-gate usr/src/cmd/zoneadm/zoneadm.c: sanity_check() treats CMD_CLONE as
// CMD_INSTALL for the target; clone_func() then checks the source, and validate_clone() the
// brands).
import { hostError, type HostError, type ZoneState } from './index.js';

/** States in which a zone exists in the kernel: lookup_running_zone() finds it. */
const IN_KERNEL: ReadonlySet<ZoneState> = new Set<ZoneState>(['ready', 'running', 'shutting_down', 'down', 'mounted']);

/** A zone as the clone checks see it; undefined for one that does not exist. */
export interface CloneParty {
  state: ZoneState;
  brand: string;
}

/**
 * Why `name` (`target`) cannot be cloned from `source` (`from`), or null if it can: Z_NO_ZONE for
 * a missing zone, Z_BAD_ZONE_STATE for a wrong state, Z_INVAL for different brands.
 */
export function cloneRefusal(name: string, targetZone: CloneParty | undefined, source: string, fromZone: CloneParty | undefined): HostError | null {
  const target = targetZone?.state;
  const from = fromZone?.state;
  const zerror = (code: string, message: string) => hostError(code, `zoneadm: zone '${name}': ${message}`);
  if (target === undefined) return zerror('Z_NO_ZONE', 'No such zone configured');
  if (IN_KERNEL.has(target)) return zerror('Z_BAD_ZONE_STATE', `clone operation is invalid for ${target} zones.`);
  if (target === 'installed') return zerror('Z_BAD_ZONE_STATE', 'is already installed.');
  if (target === 'incomplete') return zerror('Z_BAD_ZONE_STATE', 'zone is incomplete; uninstall required.');
  if (from !== undefined && IN_KERNEL.has(from)) return zerror('Z_BAD_ZONE_STATE', `clone operation is invalid for ${from} zones.`);
  // zperror2(source_zone, ...) and a bare fprintf: these two name the source without the prefix
  if (from === undefined) return hostError('Z_NO_ZONE', `zoneadm: ${source}: could not get state: No such zone configured`);
  if (from !== 'installed') return hostError('Z_BAD_ZONE_STATE', `zoneadm: zone ${source} is ${from}; installed is required.`);
  // validate_clone() -> valid_brand_clone(): the zonepath's contents are the brand's
  if (fromZone!.brand !== targetZone!.brand) {
    return hostError('Z_INVAL', `zoneadm: Zones '${source}' and '${name}' have different brand types.`);
  }
  return null;
}
