import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resources } from '../../../shared/resources.js';

/**
 * The package as a user gets it: `npm pack` (its prepack builds the construct and the function
 * bundles), installed into an empty project outside this repository, where a small app synthesizes
 * a stack with the construct and TypeScript checks that app against the shipped types.
 * aws-cdk-lib and constructs (peer dependencies) are this repository's copies, linked in: the
 * registry install of aws-cdk-lib is tens of megabytes and proves nothing about this package.
 */
const PACKAGE = join(import.meta.dirname, '..');
const ROOT = join(PACKAGE, '..', '..');
const npm = (args: string[], cwd: string) =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });

const APP = `import { App, CfnOutput, Duration, Stack, aws_iam as iam, aws_lambda as lambda } from 'aws-cdk-lib';
import { JobManager, type JobManagerProps } from '@serverless-jobs/cdk';

const app = new App({ outdir: 'cdk.out' });
const stack = new Stack(app, 'Platform');
const render = new lambda.Function(stack, 'Render', {
  runtime: lambda.Runtime.NODEJS_24_X,
  handler: 'index.handler',
  code: lambda.Code.fromInline('export const handler = async () => ({ status: "ok" });'),
  timeout: Duration.seconds(60),
});
const props: JobManagerProps = {
  stage: 'demo',
  processors: {
    'invoice.render': { function: render, maxAttempts: 5 },
    'partner.hook': { url: 'https://partner.example.com/jobs', secret: 'partner/signing' },
  },
};
const jobs = new JobManager(stack, 'Jobs', props);
jobs.grantSubmit(new iam.Role(stack, 'Service', { assumedBy: new iam.AccountRootPrincipal() }));
new CfnOutput(stack, 'ApiUrl', { value: jobs.apiUrl });
app.synth();
`;

describe('npm pack of @serverless-jobs/cdk', () => {
  let dir: string;
  let tarball: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'jobs-cdk-pack-'));
    // prepack's build logs to stdout too, so the tarball is found by its name, not in npm's output.
    npm(['pack', '--pack-destination', dir], PACKAGE);
    tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz')) as string);
    const project = join(dir, 'app');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // The one install; peers are linked below rather than fetched.
    npm(['install', '--no-audit', '--no-fund', '--legacy-peer-deps', tarball], project);
    for (const peer of ['aws-cdk-lib', 'constructs']) {
      symlinkSync(join(ROOT, 'node_modules', peer), join(project, 'node_modules', peer), 'dir');
    }
    writeFileSync(join(project, 'app.ts'), APP);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          outDir: 'out',
          types: [],
        },
        files: ['app.ts'],
      }),
    );
  }, 600_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ships the construct, its types and the prebuilt function bundles, and none of the sources', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').sort();
    expect(files).toEqual(
      [
        'package/README.md',
        'package/dist/index.d.ts',
        'package/dist/index.js',
        'package/package.json',
        ...Object.keys(resources.functions).flatMap((key) => [
          `package/lambda/${key}/index.mjs`,
          `package/lambda/${key}/index.mjs.map`,
        ]),
      ].sort(),
    );
  });

  it('type-checks and synthesizes an app in a project of its own, deploying the shipped bundles', () => {
    const project = join(dir, 'app');
    // The repository's TypeScript compiles the app against the installed package's declarations.
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], {
      cwd: project,
      encoding: 'utf8',
    });
    execFileSync(process.execPath, [join(project, 'out', 'app.js')], { cwd: project, encoding: 'utf8' });

    const out = join(project, 'cdk.out');
    const template = JSON.parse(readFileSync(join(out, 'Platform.template.json'), 'utf8'));
    // biome-ignore lint/suspicious/noExplicitAny: CloudFormation of any shape.
    const functions = Object.entries<any>(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
    const ours = functions.filter(([, f]) => String(f.Properties.FunctionName ?? '').startsWith('jobs-demo-'));
    expect(ours.map(([, f]) => f.Properties.FunctionName).sort()).toEqual(
      Object.keys(resources.functions)
        .map((key) => `jobs-demo-${key}`)
        .sort(),
    );
    const worker = ours.find(([, f]) => f.Properties.FunctionName === 'jobs-demo-worker')?.[1];
    expect(JSON.stringify(worker.Properties.Environment.Variables.PROCESSORS)).toContain('invoice.render');

    // Each function's asset is the bundle the package shipped, byte for byte.
    const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
    const shipped = new Set(
      Object.keys(resources.functions).map((key) =>
        digest(join(project, 'node_modules', '@serverless-jobs', 'cdk', 'lambda', key, 'index.mjs')),
      ),
    );
    const assets = readdirSync(out)
      .filter((entry) => entry.startsWith('asset.'))
      .flatMap((entry) => readdirSync(join(out, entry)).map((file) => join(out, entry, file)))
      .filter((file) => file.endsWith('index.mjs'));
    expect(new Set(assets.map(digest))).toEqual(shipped);
    // A type check and a synth in a fresh process: tens of seconds on a busy 2-core machine.
  }, 180_000);
});
