// POST /sim/net/trace: how a packet would fare in a VPC, answered by the simulated host's
// dataplane. Like the simulated agent's /poke routes, a development and test aid, not part of
// omicron's API: on a host whose dataplane is the kernel's (illumos) it is a 404 that says so.
// An `out` trace on one sled names where the packet goes next (`{"underlay": <sled>}` from V2P,
// or a local port); an `in` trace on that sled completes the path, as a real rack would.
import { Type } from 'typebox';
import { objectNotFound } from './common/errors.js';
import { StringEnum } from './params.js';
import type { App } from './server.js';
import type { SledAgent } from './sled-agent.js';

const Port = Type.Integer({ minimum: 0, maximum: 65535 });

export const TracePacketSchema = Type.Object({
  vni: Type.Integer({ minimum: 0, maximum: 0xff_ffff }),
  src_ip: Type.String({ format: 'ipv4' }),
  dst_ip: Type.String({ format: 'ipv4' }),
  protocol: StringEnum(['TCP', 'UDP', 'ICMP']),
  src_port: Type.Optional(Port),
  dst_port: Type.Optional(Port),
  direction: StringEnum(['out', 'in']),
}, { additionalProperties: false });

const TraceAnswerSchema = Type.Object({
  verdict: StringEnum(['allow', 'deny', 'no_route', 'no_port']),
  port: Type.Union([Type.String(), Type.Null()]),
  layer: Type.Union([Type.String(), Type.Null()]),
  rule: Type.String({ description: 'the firewall rule or router entry that decided, in opteadm syntax, or "default"' }),
  reason: Type.String(),
  next: Type.Optional(Type.Object({}, { additionalProperties: true, description: '{"local_port"}, {"underlay"}, {"internet_gateway"} or {"gateway"}' })),
}, { additionalProperties: true });

const netTrace = {
  operationId: 'sim_net_trace',
  description: 'Development aid of the simulated host (not in omicron\'s API): evaluates a packet at the port on '
    + 'this sled whose IP and VNI match (src_ip going out, dst_ip coming in) and says what decided and where it goes next.',
  body: TracePacketSchema,
  response: { 200: TraceAnswerSchema },
} as const;

export function netTraceRoutes(app: App, agentOf: () => SledAgent): void {
  app.post('/sim/net/trace', { schema: netTrace }, async (request) => {
    const network = agentOf().host.network;
    if (network.trace === undefined) {
      throw objectNotFound('packet traces need the simulated host: this sled\'s dataplane is the kernel\'s (use opteadm dump-layer)');
    }
    return network.trace(request.body);
  });
}
