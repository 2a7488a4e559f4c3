import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Auth } from '@serverless-jobs/client';
import { UsageError } from './exit.js';

export type AuthMode = Auth['type'];
export const AUTH_MODES: readonly AuthMode[] = ['none', 'iam', 'jwt'];

/** Where and as whom to call the API; each field from a flag, else its JOBS_* variable, else the profile. */
export interface Settings {
  endpoint?: string;
  auth?: AuthMode;
  token?: string;
  owner?: string;
  region?: string;
}

export interface ConfigFile {
  /** The profile used when neither --profile nor JOBS_PROFILE names one. */
  default?: string;
  profiles?: Record<string, Settings>;
}

export interface Connection {
  endpoint: string;
  auth: Auth;
}

/** `JOBS_CONFIG`, else the XDG place: `~/.config/jobs/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.JOBS_CONFIG) return env.JOBS_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'jobs', 'config.json');
}

function readConfig(path: string): ConfigFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path} is not JSON: ${(error as Error).message}`);
  }
  const profiles = (parsed as ConfigFile | null)?.profiles;
  if (typeof parsed !== 'object' || parsed === null || (profiles !== undefined && typeof profiles !== 'object')) {
    throw new UsageError(`${path}: expected {"default"?: NAME, "profiles": {NAME: {endpoint, auth, token, owner}}}`);
  }
  return parsed as ConfigFile;
}

/** The named profile (or the file's default); none when there is no file and no name was asked for. */
function profileSettings(name: string | undefined, env: NodeJS.ProcessEnv): Settings {
  const path = configPath(env);
  const file = readConfig(path);
  const chosen = name ?? file?.default;
  if (chosen === undefined) return {};
  const settings = file?.profiles?.[chosen];
  if (!settings) {
    const known = Object.keys(file?.profiles ?? {});
    throw new UsageError(
      `no profile '${chosen}' in ${path}${known.length ? ` (profiles: ${known.join(', ')})` : file ? '' : ' (no such file)'}`,
    );
  }
  return settings;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Flags (and the variables commander reads for them) win, then the profile. Without an auth mode,
 * a token means `jwt`; else a loopback endpoint (the local stack) gets `none` and any other `iam`,
 * the deployed API's default.
 */
export function connect(flags: Settings & { profile?: string }, env: NodeJS.ProcessEnv = process.env): Connection {
  const profile = profileSettings(flags.profile, env);
  const pick = <K extends keyof Settings>(key: K): Settings[K] => flags[key] ?? profile[key];
  const endpoint = pick('endpoint');
  if (!endpoint) {
    throw new UsageError(
      `no endpoint: pass --endpoint URL, set JOBS_ENDPOINT, or add a profile to ${configPath(env)} (e.g. http://127.0.0.1:3000 for npm start)`,
    );
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UsageError(`endpoint '${endpoint}' is not a URL`);
  }
  const mode = pick('auth') ?? (pick('token') ? 'jwt' : LOOPBACK.has(url.hostname) ? 'none' : 'iam');
  if (!AUTH_MODES.includes(mode)) throw new UsageError(`auth '${mode}': expected one of ${AUTH_MODES.join(', ')}`);
  if (mode === 'jwt') {
    const token = pick('token');
    if (!token) throw new UsageError('--auth jwt needs a token: --token, JOBS_TOKEN or the profile\'s "token"');
    return { endpoint, auth: { type: 'jwt', token } };
  }
  if (mode === 'iam') {
    const region = pick('region');
    return { endpoint, auth: { type: 'iam', ...(region ? { region } : {}) } };
  }
  const owner = pick('owner');
  return { endpoint, auth: { type: 'none', ...(owner ? { owner } : {}) } };
}
