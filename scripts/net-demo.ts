// Guest networking across two sleds of a local rack (`npm run rack -- --sleds 2 --real`):
// `npm run net-demo -- http://SLED0 http://SLED1`. Starts a guest on each sled in one VPC with
// Nexus's default VPC rules, tells each sled where the other's guest lives (V2P), and prints the
// dataplane's verdicts for an SSH packet from guest 0 to guest 1, before and after, and for HTTP,
// which the default rules do not let in. The addresses in the bodies are data: nothing
// connects to them.
import { randomUUID } from 'node:crypto';
import { defaultVpcRules } from '../test/support/vpc-rules.js';

const [sled0, sled1] = process.argv.slice(2);
if (!sled0 || !sled1) {
  process.stderr.write('usage: npm run net-demo -- http://SLED0_ADDR http://SLED1_ADDR (the sled agents `npm run rack -- --sleds 2 --real` printed)\n');
  process.exit(2);
}
const VNI = 1024;
const SUBNET = '172.30.0.0/22';
const sleds = [sled0, sled1].map((url, i) => ({ url: url.replace(/\/$/, ''), underlay: `fd00:1122:3344:${101 + i}::1` }));
const guests = sleds.map((_, i) => ({
  id: randomUUID(),
  nic: { name: 'net0', ip: `172.30.0.${5 + i}`, mac: `A8:40:25:F0:00:0${1 + i}`, subnet: SUBNET, vni: VNI, primary: true, slot: 0 },
}));

async function call(url: string, method: string, body?: unknown): Promise<any> {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

for (const [i, g] of guests.entries()) {
  const runtime = {
    run_state: 'creating', sled_id: randomUUID(), propolis_id: randomUUID(), dst_propolis_id: null,
    propolis_addr: `[${sleds[i]!.underlay.replace(/::1$/, '::10')}]:12400`, migration_id: null,
    ncpus: 1, memory: 1024 ** 3, hostname: `guest${i}`, gen: 1, time_updated: new Date().toISOString(),
  };
  const state = await call(`${sleds[i]!.url}/instances/${g.id}`, 'PUT', {
    initial: { runtime, nics: [g.nic], disks: [], firewall_rules: defaultVpcRules([SUBNET]) },
    target: { run_state: 'running', migration_params: null },
  });
  console.log(`guest ${i} (${g.nic.ip}) on sled ${i}: ${state.run_state}`);
}

const ssh = { vni: VNI, src_ip: guests[0]!.nic.ip, dst_ip: guests[1]!.nic.ip, protocol: 'TCP', src_port: 40000, dst_port: 22 };
const trace = async (sled: number, packet: object) => call(`${sleds[sled]!.url}/sim/net/trace`, 'POST', packet);
const show = (what: string, answer: any) =>
  console.log(`${what}: ${answer.verdict}${answer.rule ? ` (${answer.layer ?? '-'}: ${answer.rule})` : ''}${answer.next ? ` -> ${JSON.stringify(answer.next)}` : ''}`);

// The ports are made as the guests start; wait until sled 0's guest has one.
for (let tries = 0; (await trace(0, { ...ssh, direction: 'out' })).verdict === 'no_port' && tries < 100; tries += 1) {
  await new Promise((r) => setTimeout(r, 100));
}
show('SSH 0 -> 1, out on sled 0, no V2P yet', await trace(0, { ...ssh, direction: 'out' }));
for (const [i, g] of guests.entries()) {
  const other = 1 - i;
  await call(`${sleds[other]!.url}/v2p/${randomUUID()}`, 'PUT', {
    virtual_ip: g.nic.ip, virtual_mac: g.nic.mac, physical_host_ip: sleds[i]!.underlay, vni: VNI,
  });
}
console.log('V2P set on both sleds');
show('SSH 0 -> 1, out on sled 0', await trace(0, { ...ssh, direction: 'out' }));
show('SSH 0 -> 1, in on sled 1', await trace(1, { ...ssh, direction: 'in' }));
show('HTTP from outside the VPC, in on sled 1', await trace(1, { ...ssh, src_ip: '203.0.113.9', dst_port: 80, direction: 'in' }));
