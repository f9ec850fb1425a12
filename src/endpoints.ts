// Route schemas of the sled agent API, shared by the real agent's and the sim's route tables so
// both publish the same contract (../shared/contracts/omicron/sled-agent.json, and
// sled-agent-networking.json for guest networking).
import { Type } from 'typebox';
import {
  ApiError, DatasetEnsureBody, DiskEnsureBody, ServiceEnsureBody, DiskPathParam, DiskRuntimeState, InstanceEnsureBody, InstancePathParam,
  InstanceRuntimeState, InterfacePathParam, NoContent, SetVirtualNetworkInterfaceHost, UpdateArtifact, V2pMapping,
  VpcFirewallRulesEnsureBody, VpcPathParam,
} from './params.js';

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
