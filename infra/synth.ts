import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { buildApp } from './app.js';

/**
 * `npm run synth`: every environment in cdk.json, offline, each into cdk.out/NAME, with cdk-nag's
 * AwsSolutions checks (a finding fails the synth) and cfn-lint on each template where installed.
 */
const root = join(import.meta.dirname, '..');
const context = JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8')).context as Record<string, unknown>;
const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(context.environments as object);

for (const name of names) {
  const outdir = join(root, 'cdk.out', name);
  const app = new App({ outdir, context: { ...context, env: name } });
  const stack = buildApp(app, name);
  const assembly = app.synth({ validateOnSynthesis: true });
  const template = join(assembly.directory, stack.templateFile);
  const resources = Object.keys(JSON.parse(readFileSync(template, 'utf8')).Resources).length;
  console.log(
    `synth ${name}: ${resources} resources → ${template.slice(root.length + 1)} (cdk-nag AwsSolutions: clean)`,
  );
  lint(template);
}

function lint(template: string): void {
  try {
    execFileSync('cfn-lint', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('cfn-lint not installed (pip install cfn-lint): template lint skipped');
    return;
  }
  try {
    execFileSync('cfn-lint', [template], { encoding: 'utf8' });
  } catch (error) {
    const { status, stdout } = error as { status: number; stdout: string };
    // cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    if (status & 2) {
      console.error(stdout);
      throw new Error(`cfn-lint found errors in ${template}`);
    }
  }
  console.log('cfn-lint: no errors');
}
