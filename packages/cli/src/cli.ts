#!/usr/bin/env node
import { basename } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ROW_STATUSES } from '../../../shared/core/batches/model.js';
import { JOB_STATUSES, TASK_STATUSES } from '../../../shared/core/model.js';
import pkg from '../package.json' with { type: 'json' };
import * as commands from './commands.js';
import { AUTH_MODES } from './config.js';
import { CliError, EXIT, formatReport, reportOf } from './exit.js';

// fetch parses HTTP with WebAssembly (llhttp); V8's optimising recompile of it runs in the background and
// holds the exit back by ~100 ms, and costs a third of the CPU of a `jobs get`. A CLI making a few calls
// is served as well by the baseline compiler.
setFlagsFromString('--liftoff-only');

function integer(min: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number ≥ ${min}`);
    return n;
  };
}

function json(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('expected JSON, e.g. \'{"n": 1}\' or \'"text"\'');
  }
}

function jsonObject(value: string): Record<string, unknown> {
  const parsed = json(value);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('expected a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** `--meta KEY=VALUE`, repeatable; `meta.KEY=VALUE` (the API's own spelling) is taken too. */
function keyValue(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const at = value.indexOf('=');
  const key = value.slice(0, at).replace(/^meta\./, '');
  if (at <= 0 || !key) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [key]: value.slice(at + 1) };
}

const interval = () =>
  new Option('--interval <seconds>', 'seconds between reads while it runs').argParser(integer(1)).default(1);
const timeout = () => new Option('--timeout <seconds>', 'give up (exit 12) after this long').argParser(integer(1));
const limit = () => new Option('--limit <n>', 'at most this many').argParser(integer(1)).default(50);
const order = () => new Option('--order <order>', 'by creation time').choices(['asc', 'desc']);
const meta = (what: string) => new Option('--meta <key=value>', what).argParser(keyValue);

// `jobs` is a builtin of every POSIX shell, which a shell runs before any program of that name: from a
// shell (and from npx and npm scripts, which use one) the same program answers as `jobsctl`.
const name = basename(process.argv[1] ?? '') === 'jobsctl' ? 'jobsctl' : 'jobs';

const program = new Command(name)
  .description('Submit, watch and read the jobs and batches of a serverless-jobs API.')
  .version(pkg.version)
  .addOption(new Option('--endpoint <url>', 'the API base URL').env('JOBS_ENDPOINT'))
  .addOption(
    new Option('--auth <mode>', 'how to authenticate (default: jwt with a token, none on 127.0.0.1, else iam)')
      .choices(AUTH_MODES)
      .env('JOBS_AUTH'),
  )
  .addOption(new Option('--token <jwt>', 'the bearer token for --auth jwt').env('JOBS_TOKEN'))
  .addOption(new Option('--owner <name>', 'the local principal to act as, with --auth none').env('JOBS_OWNER'))
  .addOption(new Option('--region <region>', 'the AWS region to sign for, with --auth iam (default: AWS_REGION)'))
  .addOption(new Option('--profile <name>', 'a profile of ~/.config/jobs/config.json (or JOBS_CONFIG)'))
  .option('--json', 'JSON on stdout: one document, or JSON Lines for lists and streams')
  .showHelpAfterError()
  .showSuggestionAfterError()
  .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
  .exitOverride()
  .addHelpText(
    'after',
    `
Examples:
  ${name} submit --type greet --processor demo.echo --input '{"hello":"world"}' --watch
  ${name} ls --status FAILED --meta team=ops
  ${name} batch rows.csv --processor demo.rows --chunk-size 100
  ${name} download ID errors -o errors.jsonl

Exit codes: 0 ok, 2 usage, 3 refused by the API, 4 not found, 5 auth, 6 unreachable or server error,
10 job FAILED, 11 job ABORTED, 12 timed out, 130 interrupted, 1 anything else.`,
  );

let endpoint: string | undefined;
const interrupt = new AbortController();

/** Runs an action with its context; a non-zero answer is the exit code. */
function action<A extends unknown[]>(run: (ctx: commands.Context, ...args: A) => Promise<number>) {
  return async (...args: unknown[]) => {
    const command = args.at(-1) as Command;
    const ctx = commands.contextOf(command.optsWithGlobals(), interrupt.signal);
    endpoint = ctx.endpoint;
    // Ctrl-C stops watching or following (the job goes on); a second one kills at once.
    process.once('SIGINT', () => interrupt.abort());
    const positional = args.slice(0, -2) as unknown[];
    process.exitCode = await run(ctx, ...([...positional, args.at(-2)] as A));
  };
}

program
  .command('submit')
  .description('submit a job: a JSON body from FILE or stdin, or one task from flags')
  .argument('[file]', 'the body as JSON (- for stdin)')
  .option('--type <type>', 'the job type')
  .option('--processor <name>', 'the one task processor')
  .addOption(new Option('--input <json>', "the task's input").argParser(json))
  .option('--name <name>', 'a name for the job')
  .addOption(meta('a meta value, repeatable'))
  .addOption(new Option('--strategy <strategy>').choices(['sequential', 'concurrent']))
  .option('--idempotency-key <key>', 'the same key answers the same job')
  .option('--watch', 'then watch it, and exit as the job ends')
  .addOption(interval())
  .addOption(timeout())
  .addHelpText(
    'after',
    `
Examples:
  ${name} submit job.json
  echo '{"type":"t","tasks":[{"processor":"demo.echo"}]}' | ${name} submit
  ${name} submit --type greet --processor demo.echo --input '{"n":1}' --meta team=ops --watch`,
  )
  .action(action(commands.submit));

program
  .command('get')
  .description('show a job or batch')
  .argument('<id>')
  .addOption(new Option('--wait <seconds>', 'hold the answer until it settles (≤ 20)').argParser(integer(0)))
  .action(action(commands.get));

program
  .command('watch')
  .description('follow a job until it ends: a task table or a progress bar; exits 10 FAILED, 11 ABORTED')
  .argument('<id>')
  .addOption(interval())
  .addOption(timeout())
  .action(action(commands.watchJob));

program.command('abort').description('abort a job').argument('<id>').action(action(commands.abort));

program
  .command('ls')
  .description('find jobs, newest first')
  .option('--type <type>')
  .addOption(new Option('--status <status>').choices(JOB_STATUSES))
  .option('--created-after <iso-time>')
  .option('--created-before <iso-time>')
  .addOption(meta('only jobs whose meta KEY is VALUE, repeatable'))
  .addOption(order())
  .addOption(limit())
  .action(action((ctx, flags: Parameters<typeof commands.ls>[1]) => commands.ls(ctx, flags)));

program
  .command('tasks')
  .description('find tasks across jobs')
  .option('--processor <name>')
  .addOption(new Option('--status <status>').choices(TASK_STATUSES))
  .option('--job-type <type>')
  .addOption(order())
  .addOption(limit())
  .action(action((ctx, flags: Parameters<typeof commands.tasks>[1]) => commands.tasks(ctx, flags)));

program
  .command('events')
  .description("a job's update log, oldest first")
  .argument('<id>')
  .option('-f, --follow', 'keep reading until the job settles')
  .addOption(interval())
  .action(action(commands.events));

program
  .command('rows')
  .description("a batch's row outcomes as JSON Lines")
  .argument('<id>')
  .addOption(new Option('--status <status>').choices(ROW_STATUSES))
  .action(action(commands.rows));

program
  .command('batch')
  .description('run a batch over a CSV or JSON Lines file: submit, upload, release, watch')
  .argument('<file>', 'rows as .csv (a header row) or .jsonl')
  .requiredOption('--processor <name>', 'the row processor')
  .option('--type <type>', 'the job type', 'batch')
  .addOption(new Option('--format <format>', 'default: from the extension').choices(['csv', 'jsonl']))
  .addOption(new Option('--chunk-size <n>', 'rows per processor call (1-1000)').argParser(integer(1)))
  .addOption(new Option('--max-failed-rows <n>', 'fail the batch past this many').argParser(integer(0)))
  .addOption(new Option('--context <json>', 'passed to every call').argParser(jsonObject))
  .option('--name <name>')
  .addOption(meta('a meta value, repeatable'))
  .option('--idempotency-key <key>')
  .option('--no-watch', 'return once released')
  .addOption(interval())
  .addOption(timeout())
  .addHelpText('after', `\nExample:\n  ${name} batch payments.csv --processor payments.apply --chunk-size 200`)
  .action(action(commands.batch));

program
  .command('download')
  .description("a finished batch's output file (default: results) to stdout or FILE")
  .argument('<id>')
  .argument('[output]', 'results, errors, or a name the rows emitted')
  .option('-o, --out <file>', 'write to this file')
  .action(action(commands.download));

process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  // `jobs rows ID | head`: the reader left; that is not a failure.
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // commander has printed the error (and the help) already; help and --version are not errors.
    process.exitCode = error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else {
    const report =
      interrupt.signal.aborted && !(error instanceof CliError)
        ? { code: 'INTERRUPTED', message: 'interrupted', exitCode: EXIT.INTERRUPTED }
        : reportOf(error, endpoint);
    process.stderr.write(formatReport(report, program.opts().json === true));
    process.exitCode = report.exitCode;
  }
}
