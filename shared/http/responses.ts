import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { ErrorCode, ErrorDetail } from '../core/errors.js';

/** HTTP status of each contract error code (API.md, "Errors"). */
export const STATUS_OF: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  UNKNOWN_PROCESSOR: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  IDEMPOTENCY_MISMATCH: 409,
  INVALID_STATE: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  INTERNAL: 500,
};

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(body),
  };
}

export function errorResponse(
  code: ErrorCode,
  message: string,
  details?: ErrorDetail[],
  headers: Record<string, string> = {},
): APIGatewayProxyStructuredResultV2 {
  return json(STATUS_OF[code], { error: { code, message, ...(details?.length ? { details } : {}) } }, headers);
}
