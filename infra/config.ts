import { z } from 'zod';
import { settingsConflicts, settingsSchema } from '../packages/cdk/src/settings.js';

/**
 * Per-environment settings, read from `cdk.json` (`context.environments.NAME`) and validated so a
 * typo fails the synth rather than the deploy: the JobManager construct's settings, plus where the
 * stack goes and what it deploys besides.
 */
export const environmentSchema = settingsSchema.extend({
  /** Target account and region; unset means the CLI's (environment-agnostic synth). */
  account: z
    .string()
    .regex(/^\d{12}$/)
    .nullable()
    .default(null),
  region: z.string().default('us-east-1'),
  /** The processor registry (same format as the PROCESSORS variable). */
  processors: z.record(z.string(), z.unknown()).default({}),
  /** Deploy the demo processors of API.md (demo.echo, …) for smoke tests. */
  demoProcessors: z.boolean().default(false),
});

export type EnvironmentConfig = z.output<typeof environmentSchema>;

export function loadEnvironment(environments: unknown, name: string): EnvironmentConfig {
  const all = z.record(z.string(), z.unknown()).parse(environments ?? {});
  if (!(name in all)) {
    throw new Error(`No environment '${name}' in cdk.json (context.environments): ${Object.keys(all).join(', ')}`);
  }
  const config = environmentSchema.parse(all[name]);
  const conflicts = settingsConflicts(config, `environments.${name}.`);
  if (conflicts.length) throw new Error(conflicts.join('; '));
  return config;
}
