import * as z from 'zod';
import { RESERVED_OUTPUTS } from './batches/model.js';
import { jsonValue, shallow } from './json-depth.js';

/**
 * What a processor may answer (API.md, "Processor contract"), apart from the request schemas so
 * the processor kit (packages/processor) can bundle exactly these and nothing else of the server.
 */

/** Bytes of `value` serialized as UTF-8 (TextEncoder: no Node Buffer needed). */
const encoder = new TextEncoder();
const serializedBytes = (value: unknown) => encoder.encode(JSON.stringify(value)).byteLength;

/** Log entries a processor may add to its job's update log with any reply (kept per task, bounded). */
export const MAX_LOG_ENTRIES = 20;
const logEntries = z
  .array(
    z.object({
      level: z.enum(['info', 'warn', 'error']).default('info'),
      message: z.string().max(1000),
      data: shallow(z.record(z.string(), z.unknown()))
        .refine((value) => serializedBytes(value) <= 2048, { message: 'at most 2048 bytes' })
        .optional(),
    }),
  )
  .max(MAX_LOG_ENTRIES)
  .optional();

/** What a Lambda processor replies to a task, plus optional `log` entries. */
export const taskReplySchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('ok'), result: jsonValue.optional(), log: logEntries }),
  z.object({
    status: z.literal('error'),
    log: logEntries,
    error: z
      .object({
        code: z.string().max(256).optional(),
        message: z.string().max(4096).optional(),
        retryable: z.boolean().optional(),
      })
      .optional(),
  }),
]);

const outputName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1..64 of A-Z a-z 0-9 _ . -')
  .refine((name) => !(RESERVED_OUTPUTS as readonly string[]).includes(name), 'results and errors are reserved');

/** A chunk's reply. */
export const chunkReplySchema = z.object({
  rows: z.array(
    z.object({
      line: z.number().int().min(1),
      status: z.enum(['ok', 'error', 'retry']),
      result: jsonValue.optional(),
      messages: z.array(jsonValue).max(100).optional(),
      outputs: z
        .record(
          outputName,
          z
            .string()
            .max(64 * 1024)
            .regex(/^[^\r\n]*$/, 'one line: no line breaks'),
        )
        .optional(),
      error: z.object({ code: z.string().max(256).optional(), message: z.string().max(4096).optional() }).optional(),
    }),
  ),
});
export type ChunkReply = z.output<typeof chunkReplySchema>;
