import { mkdirSync, rmSync } from 'node:fs';
import { recordDir } from '../../shared/aws/iam-record.js';

/** vitest globalSetup while recording: each run's calls start from an empty folder. */
export default function setup(): void {
  const dir = recordDir();
  if (!dir) return;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}
