// Route schemas of the sled agent API, shared by the real agent's and the sim's route tables so
// both publish the same contract (test/contracts/omicron/sled-agent.json, and
// sled-agent-networking.json for guest networking).
import { Type } from 'typebox';
import {
  ApiError, DatasetEnsureBody, DiskEnsureBody, ServiceEnsureBody, DiskPathParam, DiskRuntimeState, InstanceEnsureBody, InstancePathParam,
  InstanceRuntimeState, InterfacePathParam, NoContent, SetVirtualNetworkInterfaceHost, UpdateArtifact, V2pMapping,
  VpcFirewallRulesEnsureBody, VpcPathParam,
} from './params.js';
import { Health, InstanceView, InstanceViewList, SledInventory } from './operator-params.js';

const errors = { '4xx': ApiError, '5xx': ApiError } as const;

export const instancePut = {
  operationId: 'instance_put',
  params: InstancePathParam,
  body: InstanceEnsureBody,
  response: { 200: InstanceRuntimeState, ...errors },
} as const;

export const diskPut = {
  operationId: 'disk_put',
  params: DiskPathParam,
  body: DiskEnsureBody,
  response: { 200: DiskRuntimeState, ...errors },
} as const;

export const updateArtifact = {
  operationId: 'update_artifact',
  body: UpdateArtifact,
  response: { 204: NoContent('resource updated'), ...errors },
} as const;

export const servicesPut = {
  operationId: 'services_put',
  body: ServiceEnsureBody,
  response: { 204: NoContent('resource updated'), ...errors },
} as const;

export const filesystemPut = {
  operationId: 'filesystem_put',
  body: DatasetEnsureBody,
  response: { 204: NoContent('resource updated'), ...errors },
} as const;

export const vpcFirewallRulesPut = {
  operationId: 'vpc_firewall_rules_put',
  description: 'Replace the firewall rules on this sled\'s ports in the VPC, and only those. `vni` (from omicron '
    + '#3352) says which VPC; without it, the rules\' targets must name exactly one VNI.',
  params: VpcPathParam,
  body: VpcFirewallRulesEnsureBody,
  response: { 204: NoContent('resource updated'), ...errors },
} as const;

export const v2pSet = {
  operationId: 'set_v2p',
  summary: 'Create a mapping from a virtual NIC to a physical host',
  params: InterfacePathParam,
  body: SetVirtualNetworkInterfaceHost,
  response: { 204: NoContent('resource updated'), ...errors },
} as const;

export const v2pDelete = {
  operationId: 'del_v2p',
  summary: 'Delete a mapping from a virtual NIC to a physical host',
  description: 'Removes the mapping if this sled holds exactly this one for the interface; deleting one it does '
    + 'not hold is a no-op. A local port\'s own entry is never removed.',
  params: InterfacePathParam,
  body: SetVirtualNetworkInterfaceHost,
  response: { 204: NoContent('resource updated'), ...errors },
} as const;

export const v2pList = {
  operationId: 'list_v2p',
  summary: 'List the mappings from virtual NICs to physical hosts this sled holds',
  description: 'Not in omicron\'s 2022-23 contract (sled-agent-networking.json has only PUT and DELETE '
    + '/v2p/{interface_id}); added here so Nexus or an operator can see what a sled holds. Omicron later served '
    + 'GET /v2p (#5568) with the same fields except interface_id.',
  response: { 200: Type.Array(V2pMapping, { description: 'the mappings this sled holds, by interface id' }), ...errors },
} as const;

// Sim-only endpoints, not in the contract: Nexus's tests reach them through
// sled-agent-client's TestInterfaces::{instance,disk}_finish_transition.
export const instancePoke = {
  operationId: 'instance_poke',
  params: InstancePathParam,
  response: { 204: NoContent('transition finished'), ...errors },
} as const;

export const diskPoke = {
  operationId: 'disk_poke',
  params: DiskPathParam,
  response: { 204: NoContent('transition finished'), ...errors },
} as const;

// For operators, on both agents; none is in the 2022 contract (src/operator-params.ts).
const NOT_IN_CONTRACT = 'Not in omicron\'s 2022 contract (sled-agent.json): added for operators. ';

export const instanceList = {
  operationId: 'instance_list',
  summary: 'The instances on this sled as the agent sees them now',
  description: `${NOT_IN_CONTRACT}Answered from the agent's own state, without asking the host.`,
  response: { 200: InstanceViewList, ...errors },
} as const;

export const instanceGet = {
  operationId: 'instance_get',
  summary: 'One instance as the agent sees it now',
  description: `${NOT_IN_CONTRACT}404 for an instance this sled does not have.`,
  params: InstancePathParam,
  response: { 200: InstanceView, ...errors },
} as const;

export const inventoryGet = {
  operationId: 'inventory',
  summary: 'What this sled has and runs',
  description: `${NOT_IN_CONTRACT}Modern omicron serves an inventory too, in another shape. The real agent asks the host `
    + 'for its zones, pools and OPTE ports; the simulated sled agent answers with its simulated storage, services and instances.',
  response: { 200: SledInventory, ...errors },
} as const;

export const healthGet = {
  operationId: 'health',
  summary: 'Whether the agent is serving and its host backend answers',
  description: `${NOT_IN_CONTRACT}200 when serving and the host answers a zone state query within a short deadline (checked at most `
    + 'about once a second, so a supervisor may call it every second); 503 with the reason otherwise.',
  response: { 200: Health, ...errors },
} as const;

export const metricsGet = {
  operationId: 'metrics',
  summary: 'Prometheus metrics of this agent and its process',
  description: `${NOT_IN_CONTRACT}Text exposition format 0.0.4. sled_agent_* are this agent's (HTTP requests, instances by `
    + 'state, provisioning phases, host calls, the Nexus queue, ledger writes); nodejs_* and process_* are the process\'s '
    + '(event-loop delay, GC, memory).',
  response: {
    200: { description: 'the metrics', content: { 'text/plain': { schema: Type.String() } } },
    ...errors,
  },
} as const;
