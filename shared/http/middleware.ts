import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import {
  JobsError,
  MethodNotAllowedError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../core/errors.js';
import { errorResponse } from './responses.js';

/** The API event once its body has been checked: `json` is the parsed body (undefined when empty). */
export type ApiEvent = APIGatewayProxyEventV2 & { json?: unknown };

type Middleware = MiddlewareObj<ApiEvent, APIGatewayProxyStructuredResultV2, Error, Context>;

/** Default body limit; Lambda's synchronous payload cap is 6 MB, so stay under it. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i;

/**
 * Checks and parses a JSON body: 415 unless it is `application/json`, 413 over the limit, 400 for
 * invalid UTF-8 or JSON. An empty body passes through (abort and release carry none).
 */
export function jsonBody(options: { maxBytes: number }): Middleware {
  return {
    before: (request) => {
      const { event } = request;
      if (event.body === undefined || event.body === '') return;
      const raw = event.isBase64Encoded ? Buffer.from(event.body, 'base64') : Buffer.from(event.body, 'utf8');
      if (raw.length > options.maxBytes) {
        throw new PayloadTooLargeError(`Body is ${raw.length} bytes; the limit is ${options.maxBytes}`);
      }
      const type = event.headers['content-type'] ?? '';
      if (!JSON_TYPE.test(type)) {
        throw new UnsupportedMediaTypeError(`Content-Type must be application/json, not '${type || 'none'}'`);
      }
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
      } catch {
        throw new ValidationError('Body is not valid UTF-8', [{ path: '', message: 'invalid UTF-8' }]);
      }
      try {
        event.json = JSON.parse(text);
      } catch (error) {
        throw new ValidationError('Body is not valid JSON', [{ path: '', message: (error as Error).message }]);
      }
    },
  };
}

/**
 * Turns the core's errors into the contract's error replies. Anything else is a bug: logged with
 * its stack and answered 500 without leaking internals.
 */
export function httpErrors(logger: Logger): Middleware {
  return {
    onError: (request) => {
      const { error } = request;
      if (error instanceof JobsError) {
        // RFC 9110: a 405 must say which methods the path takes.
        const headers = error instanceof MethodNotAllowedError ? { allow: error.allow.join(', ') } : undefined;
        request.response = errorResponse(error.code, error.message, error.details, headers);
        return;
      }
      logger.error('Unhandled error', error as Error);
      request.response = errorResponse('INTERNAL', 'Internal error');
    },
  };
}
