import type * as z from 'zod';
import type { BatchEngine } from '../../../shared/core/batches/engine.js';
import type { view as batchView } from '../../../shared/core/batches/reads.js';
import type { ErrorCode, ErrorDetail } from '../../../shared/core/errors.js';
import type { JobEvent } from '../../../shared/core/events.js';
import type { appendRowsSchema, submitBatchSchema, submitTasksSchema } from '../../../shared/core/schemas.js';
import type { searchJobsQuerySchema, searchTasksQuerySchema } from '../../../shared/core/search.js';
import type { toJobSummary, toJobView, toRowView, toTaskSummary } from '../../../shared/core/view.js';

/**
 * The contract's types, derived from the very schemas and views the server uses (type-only
 * imports: tsup inlines them into the .d.ts, and no server code reaches the bundle).
 */

export type { ErrorCode, ErrorDetail, JobEvent };

/** `POST /v1/jobs` with tasks, as a caller writes it (defaults may be left out). */
export type SubmitTasksBody = z.input<typeof submitTasksSchema>;
/** `POST /v1/jobs` with a batch. */
export type SubmitBatchBody = z.input<typeof submitBatchSchema>;
export type SubmitBody = SubmitTasksBody | SubmitBatchBody;
/** One row of `POST /v1/jobs/{id}/rows`. */
export type Row = z.input<typeof appendRowsSchema>['rows'][number];

type PageSize = { limit?: number };
/** A query's fields as a caller writes them (the schema's input), its page size a number. */
type QueryOf<S extends { shape: Record<string, z.ZodType> }> = {
  [K in Exclude<keyof S['shape'], 'limit'>]?: z.input<S['shape'][K]>;
} & PageSize;
/** `GET /v1/jobs` filters; `'meta.KEY': 'value'` filters by a meta value. The iterator follows the cursors itself. */
export type FindQuery = QueryOf<typeof searchJobsQuerySchema> & { [filter: `meta.${string}`]: string };
/** `GET /v1/tasks` filters. */
export type TasksQuery = QueryOf<typeof searchTasksQuerySchema>;

// TODO(responses.ts): derive these from shared/core/responses.ts once it exists.
/** A job of tasks, as `GET /v1/jobs/{id}` shows it. */
export type JobView = Awaited<ReturnType<typeof toJobView>>;
/** A batch, as `GET /v1/jobs/{id}` shows it; `batch.upload` is there in the submit reply of an upload batch. */
export type BatchView = Awaited<ReturnType<typeof batchView>>;
/** Either kind; `kind` tells them apart. */
export type AnyJobView = JobView | BatchView;
/** A job as Find lists it: a job of tasks without its tasks, or a batch. */
export type JobSummary = ReturnType<typeof toJobSummary> | BatchView;
export type TaskSummary = ReturnType<typeof toTaskSummary>;
export type RowView = ReturnType<typeof toRowView>;
export type RowStatus = RowView['status'];
/** One of a batch's assembled files (`batch.outputs[name]`). */
export type BatchOutputView = BatchView['batch']['outputs'][string];
/** What `POST /v1/jobs/{id}/rows` answers. */
export type AppendReply = Awaited<ReturnType<BatchEngine['append']>>;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
