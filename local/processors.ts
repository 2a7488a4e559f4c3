import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { type ProcessorConfig, ProcessorRegistry } from '../shared/core/processors.js';
import { resources } from '../shared/resources.js';
import { type LocalFunction, moduleFunction } from './runtime/functions.js';
import type { LocalStackOptions } from './stack.js';

/**
 * Where a Lambda function a processor calls lives on this machine. Kept out of PROCESSORS, which
 * stays exactly what is deployed: in AWS the function is found by name.
 */
const localFunctionsSchema = z.record(
  z.string().min(1),
  z.strictObject({
    /** The handler module, relative to the folder `npm start` was run from. */
    module: z.string().min(1),
    export: z
      .string()
      .regex(/^[A-Za-z_$][\w$]*$/)
      .default('handler'),
    /** Default: the longest timeout of the processors that call the function (else Lambda's 3 s). */
    timeoutSeconds: z.number().int().min(1).max(900).optional(),
    memoryMb: z.number().int().min(128).max(10240).default(128),
  }),
);

/**
 * `npm start`'s processors, from its environment: the user's registry (`PROCESSORS`, or the file
 * `PROCESSORS_FILE` names), the handler modules of its Lambda targets (`LOCAL_FUNCTIONS`), and the
 * demos beside them unless `DEMO_PROCESSORS=off`. Any mistake is one readable line.
 */
export async function localProcessors(
  env: NodeJS.ProcessEnv,
  // npm runs scripts from the package root; INIT_CWD is where the user typed the command.
  cwd: string = env.INIT_CWD ?? process.cwd(),
): Promise<Pick<LocalStackOptions, 'demo' | 'processors' | 'extraFunctions'>> {
  const demo = env.DEMO_PROCESSORS ?? 'on';
  if (demo !== 'on' && demo !== 'off') throw new Error(`DEMO_PROCESSORS must be on or off, not '${demo}'`);

  if (env.PROCESSORS !== undefined && env.PROCESSORS_FILE !== undefined) {
    throw new Error('Give PROCESSORS or PROCESSORS_FILE, not both');
  }
  let source = 'PROCESSORS';
  let text = env.PROCESSORS ?? '{}';
  if (env.PROCESSORS_FILE !== undefined) {
    source = `PROCESSORS_FILE ${env.PROCESSORS_FILE}`;
    try {
      text = readFileSync(resolve(cwd, env.PROCESSORS_FILE), 'utf8');
    } catch (error) {
      throw new Error(`${source}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
  }
  // The same checks the worker makes at its cold start.
  try {
    ProcessorRegistry.fromJson(text, {
      workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
      maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
    });
  } catch (error) {
    throw new Error(`${source}: ${(error as Error).message}`);
  }
  const processors = JSON.parse(text) as Record<string, ProcessorConfig>;

  let mapping: z.infer<typeof localFunctionsSchema> = {};
  if (env.LOCAL_FUNCTIONS !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(env.LOCAL_FUNCTIONS);
    } catch (error) {
      throw new Error(`LOCAL_FUNCTIONS is not JSON: ${(error as Error).message}`);
    }
    const parsed = localFunctionsSchema.safeParse(raw);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(top)'}: ${issue.message}`);
      throw new Error(`LOCAL_FUNCTIONS: ${issues.join('; ')}`);
    }
    mapping = parsed.data;
  }
  const functions: LocalFunction[] = [];
  for (const [name, fn] of Object.entries(mapping)) {
    const callers = Object.values(processors).filter(
      (p) => p.target.type === 'lambda' && p.target.functionName === name,
    );
    const path = resolve(cwd, fn.module);
    if (!existsSync(path)) throw new Error(`LOCAL_FUNCTIONS ${name}: no module ${fn.module} in ${cwd}`);
    try {
      functions.push(
        await moduleFunction({
          name,
          module: pathToFileURL(path),
          export: fn.export,
          timeoutSeconds: fn.timeoutSeconds ?? Math.max(3, ...callers.map((p) => p.timeoutSeconds)),
          memoryMb: fn.memoryMb,
        }),
      );
    } catch (error) {
      throw new Error(`LOCAL_FUNCTIONS ${name}: cannot load ${fn.module}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return { demo: demo === 'on', processors, extraFunctions: functions };
}
