import { readFileSync } from 'node:fs';

/**
 * The README's examples, run exactly as printed against a local stack, so they cannot drift from
 * the system. Every ```bash block runs, in order, unless the line before it says
 * `<!-- not run: why -->`. The one thing filled in is where the stack listens: the README says
 * http://127.0.0.1:3000 (`npm start`'s default), the test stack is on a free port.
 */
export interface Example {
  file: string;
  line: number;
  script: string;
}

export function examplesOf(file: string): { run: Example[]; skipped: Example[] } {
  const lines = readFileSync(file, 'utf8').split('\n');
  const run: Example[] = [];
  const skipped: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```bash') continue;
    const end = lines.indexOf('```', i + 1);
    const example = { file, line: i + 1, script: lines.slice(i + 1, end).join('\n') };
    (lines[i - 1]?.startsWith('<!-- not run:') ? skipped : run).push(example);
    i = end;
  }
  return { run, skipped };
}
