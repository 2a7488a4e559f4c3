import type * as z from 'zod';
import type { ErrorCode, ErrorDetail } from '../../../shared/core/errors.js';
import type {
  AppendReply,
  BatchJobView,
  JobEvent,
  RowView,
  JobSummary as ServerJobSummary,
  TaskJobView,
  TaskSummaryView,
} from '../../../shared/core/responses.js';
import type { appendRowsSchema, submitBatchSchema, submitTasksSchema } from '../../../shared/core/schemas.js';
import type { searchJobsQuerySchema, searchTasksQuerySchema } from '../../../shared/core/search.js';

/**
 * The contract's types, derived from the very schemas the server validates and answers with (type-only
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

/** A job of tasks, as `GET /v1/jobs/{id}` shows it (the server's response schema). */
export type JobView = TaskJobView;
/** A batch, as `GET /v1/jobs/{id}` shows it; `batch.upload` is there in the submit reply of an upload batch. */
export type BatchView = BatchJobView;
/** Either kind; `kind` tells them apart. */
export type AnyJobView = JobView | BatchView;
/** A job as Find lists it: a job of tasks without its tasks, or a batch. */
export type JobSummary = ServerJobSummary;
export type TaskSummary = TaskSummaryView;
export type { RowView };
export type RowStatus = RowView['status'];
/** One of a batch's assembled files (`batch.outputs[name]`). */
export type BatchOutputView = BatchView['batch']['outputs'][string];
/** What `POST /v1/jobs/{id}/rows` answers. */
export type { AppendReply };

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
