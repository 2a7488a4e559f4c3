import type { BatchEngine } from '../../shared/core/batches/engine.js';
import { Jobs } from '../../shared/core/jobs.js';
import { Cursors } from '../../shared/core/search.js';
import { TaskEngine, type TaskEngineDeps } from '../../shared/core/tasks/engine.js';

/**
 * The task engine behind the jobs facade, as the handlers use them together: `submit`, `commit`,
 * `read`, `abort` and `sweep` through the facade, a message's run and poison on the engine.
 */
export function taskJobs(deps: TaskEngineDeps & { batches?: BatchEngine }) {
  const tasks = new TaskEngine(deps);
  const jobs = new Jobs({
    store: deps.store,
    tasks,
    payloads: deps.payloads,
    cursors: new Cursors(async () => 'test-cursor-key'),
    clock: deps.clock,
    ...(deps.batches ? { batches: deps.batches } : {}),
  });
  return {
    tasks,
    jobs,
    submit: jobs.submit.bind(jobs),
    prepare: jobs.prepare.bind(jobs),
    commit: jobs.commit.bind(jobs),
    read: jobs.read.bind(jobs),
    abort: tasks.abort.bind(tasks),
    sweep: jobs.sweep.bind(jobs),
    runTask: tasks.runTask.bind(tasks),
    poison: tasks.poison.bind(tasks),
  };
}
