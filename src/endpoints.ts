// Route schemas of the sled agent API, shared by the real agent's and the sim's route tables so
// both publish the same contract (../shared/contracts/omicron/sled-agent.json).
import {
  ApiError, DatasetEnsureBody, DiskEnsureBody, ServiceEnsureBody, DiskPathParam, DiskRuntimeState, InstanceEnsureBody, InstancePathParam,
  InstanceRuntimeState, NoContent, UpdateArtifact,
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
