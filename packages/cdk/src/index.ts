export { JobManager, JobManagerCode, type JobManagerProps } from './job-manager.js';
export type {
  Backoff,
  HttpProcessor,
  JobProcessor,
  LambdaProcessor,
  ProcessorKind,
  ProcessorOptions,
} from './processors.js';
export type { JobManagerAuth, JobManagerSettings } from './settings.js';
