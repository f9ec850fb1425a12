// Route schemas of the bootstrap agent API (test/contracts/omicron/bootstrap-agent.json).
import {
  ApiError, ShareRequest, ShareResponse, SledAgentRequest, SledAgentResponse,
} from '../params.js';

const errors = { '4xx': ApiError, '5xx': ApiError } as const;

export const requestShare = {
  operationId: 'request_share',
  body: ShareRequest,
  response: { 200: ShareResponse, ...errors },
} as const;

export const startSled = {
  operationId: 'start_sled',
  body: SledAgentRequest,
  response: { 200: SledAgentResponse, ...errors },
} as const;
