import * as z from 'zod';
import { outputKeys } from '../keys.js';
import { isTerminal } from '../model.js';
import type { Caller } from '../owners.js';
import type { BatchJobView } from '../responses.js';
import { badCursor } from '../search.js';
import { jobHeading } from '../view.js';
import { type BatchContext, readBatch } from './context.js';
import type { BatchJob, RowCounts, RowOutcome, RowStatus, Tally } from './model.js';
import { abortedRow, chunkCount, chunkOfLine, commitMap, linesOfChunk, sumTallies, totalRows } from './rules.js';

/** How long an upload URL and an output's download URL stay valid. */
const UPLOAD_URL_SECONDS = 3600;
const DOWNLOAD_URL_SECONDS = 3600;
/** Chunk outcome files the rows route reads per page at most (then it answers with a cursor). */
const ROWS_PAGE_CHUNKS = 20;
/** Where a page of rows goes on: this line. */
const rowsCursor = z.strictObject({ l: z.number().int().min(1) });

export interface RowsPage {
  items: RowOutcome[];
  nextCursor: string | null;
}

/** The job as API.md shows a batch (its schema: responses.ts). */
export async function view(ctx: BatchContext, job: BatchJob, extra: { upload?: boolean } = {}): Promise<BatchJobView> {
  const { files, tallies, clock } = ctx.deps;
  const { batch } = job;
  const total = totalRows(batch);
  const sum = sumTallies(await tallies.all(job.id));
  // Final counts once the job has ended; until then, what the tallies say so far.
  const counts: RowCounts = batch.counts ?? { succeeded: sum.succeeded, failed: sum.failed, aborted: 0 };
  const done = sum.chunks;
  const pending = Math.max(0, total - counts.succeeded - counts.failed - counts.aborted);
  const outputs: Record<string, { url: string; key: string; bytes: number; lines: number }> = {};
  for (const [name, output] of Object.entries(batch.outputs ?? {})) {
    outputs[name] = { url: await files.downloadUrl(output.key, DOWNLOAD_URL_SECONDS), ...output };
  }
  const now = clock.now();
  return {
    ...jobHeading(job),
    status: job.status,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    startedAt: job.startedAt ?? null,
    endedAt: job.endedAt ?? null,
    counts: { total, pending, running: 0, ...counts },
    progress: total === 0 ? (isTerminal(job.status) ? 1 : 0) : Math.round(((total - pending) / total) * 100) / 100,
    ...(job.idempotencyKey !== undefined ? { idempotencyKey: job.idempotencyKey } : {}),
    error: batch.error ?? null,
    batch: {
      processor: batch.processor,
      chunkSize: batch.chunkSize,
      maxFailedRows: batch.maxFailedRows,
      context: batch.context,
      chunks: { total: batch.plan?.chunks ?? chunkCount(total, batch.chunkSize), done },
      outputs,
      /** Outputs are assembled: `outputs` is complete. */
      finalized: batch.outputs !== undefined,
      ...(batch.abortRequestedAt ? { abortRequestedAt: batch.abortRequestedAt } : {}),
      ...(extra.upload && batch.upload && job.status === 'HELD'
        ? {
            upload: {
              url: await files.uploadUrl(batch.upload.key, UPLOAD_URL_SECONDS),
              method: 'PUT',
              format: batch.upload.format,
              expiresAt: new Date(now.getTime() + UPLOAD_URL_SECONDS * 1000).toISOString(),
            },
          }
        : {}),
    },
  };
}

/**
 * Pages through row outcomes in line order. A page reads at most a few chunk files, so it may
 * hold fewer than `limit` rows and still have a `nextCursor`: keep reading until it is null.
 * Chunks not committed yet show their rows PENDING (ABORTED once the batch ended without them).
 */
export async function rows(
  ctx: BatchContext,
  id: string,
  caller: Caller,
  query: { status?: RowStatus; limit: number; cursor?: string },
): Promise<RowsPage> {
  const { cursors, tallies, files } = ctx.deps;
  const job = await readBatch(ctx, id, caller);
  const fingerprint = `rows|${id}|${query.status ?? ''}`;
  const { chunkSize } = job.batch;
  const total = totalRows(job.batch);
  const from = query.cursor ? (await cursors.open(query.cursor, fingerprint, rowsCursor)).l : 1;
  // Rows are only ever added, so a cursor this job issued never points past its last row.
  if (query.cursor && from > total) throw badCursor(`the cursor is past this job's ${total} rows`);
  const commits = commitMap(await tallies.all(id));
  const unfinished: RowStatus = isTerminal(job.status) ? 'ABORTED' : 'PENDING';
  const items: RowOutcome[] = [];
  const page = async (next: number | null): Promise<RowsPage> => ({
    items,
    nextCursor: next === null ? null : await cursors.seal({ l: next }, fingerprint),
  });
  let filesRead = 0;
  for (let index = chunkOfLine(from, chunkSize); index < chunkCount(total, chunkSize); index++) {
    const { first, last } = linesOfChunk(index, chunkSize, total);
    const start = Math.max(first, from);
    const commit = commits.get(index);
    let found: RowOutcome[];
    if (!commit) {
      if (query.status !== undefined && query.status !== unfinished) continue;
      found = [];
      for (let line = start; line <= last && found.length <= query.limit - items.length; line++) {
        found.push(unfinished === 'ABORTED' ? abortedRow(line) : { line, status: unfinished });
      }
    } else {
      if (query.status === 'PENDING' || query.status === 'ABORTED') continue;
      if (query.status === 'SUCCEEDED' && commit.succeeded === 0) continue;
      if (query.status === 'FAILED' && commit.failed === 0) continue;
      if (filesRead === ROWS_PAGE_CHUNKS) return page(start);
      filesRead++;
      found = (await files.getOutcomes(outputKeys.chunk(id, index, commit.token))).filter(
        (row) => row.line >= start && (query.status === undefined || row.status === query.status),
      );
    }
    for (const row of found) {
      if (items.length === query.limit) return page(row.line);
      items.push(row);
    }
  }
  return page(null);
}

/** A batch's tallies (for its events). */
export function tallies(ctx: BatchContext, id: string): Promise<Tally[]> {
  return ctx.deps.tallies.all(id);
}
