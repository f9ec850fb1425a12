// Errors as data: each carries the HTTP status and omicron error_code it maps to, so handlers
// throw and the server's one error hook turns them into the {request_id, error_code, message}
// envelope (omicron_common::api::external::Error).
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const invalidRequest = (message: string) => new ApiError(400, 'InvalidRequest', message);
export const objectNotFound = (message: string) => new ApiError(404, 'ObjectNotFound', message);
export const conflict = (message: string) => new ApiError(409, 'ObjectAlreadyExists', message);
export const serviceUnavailable = (message: string) => new ApiError(503, 'ServiceUnavailable', message);
