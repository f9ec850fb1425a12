// A small seedable generator (mulberry32): for modelled jitter and test plans that a seed must
// replay, never for anything that needs to be unpredictable.
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `ms` drawn uniformly from ±`fraction` of itself (a modelled latency's jitter); 0 stays 0. */
export function jittered(ms: number, fraction: number, random: () => number): number {
  if (ms <= 0) return 0;
  if (fraction === 0) return ms;
  return Math.max(0, ms * (1 + fraction * (2 * random() - 1)));
}
