import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Auth, AwsCredentials, SignRequest } from './auth.js';

/** `https://abc.execute-api.eu-west-1.amazonaws.com` → `eu-west-1`. */
const EXECUTE_API_HOST = /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/;

function regionOf(auth: Extract<Auth, { type: 'iam' }>, endpoint: string): string {
  const region =
    auth.region ??
    EXECUTE_API_HOST.exec(new URL(endpoint).hostname)?.[1] ??
    (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.AWS_REGION;
  if (!region) throw new Error('auth.region is required for an endpoint that does not name its region');
  return region;
}

/**
 * The credentials: given, or the standard chain (environment, shared config and SSO, web identity,
 * container and instance metadata). The chain is Node-only, so it loads only when none are given.
 */
function credentialsOf(auth: Extract<Auth, { type: 'iam' }>): AwsCredentials | (() => Promise<AwsCredentials>) {
  if (auth.credentials) return auth.credentials;
  if (!(globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node) {
    throw new Error(
      "auth.credentials is required outside Node (the standard credential chain reads Node's environment)",
    );
  }
  let chain: Promise<() => Promise<AwsCredentials>> | undefined;
  return async () => {
    chain ??= import('@aws-sdk/credential-providers').then(({ fromNodeProviderChain }) => fromNodeProviderChain());
    return (await chain)();
  };
}

/** A signer for API Gateway (`execute-api`) in the endpoint's region. */
export function signer(auth: Extract<Auth, { type: 'iam' }>, endpoint: string): SignRequest {
  const sigv4 = new SignatureV4({
    credentials: credentialsOf(auth),
    region: regionOf(auth, endpoint),
    service: 'execute-api',
    sha256: Sha256,
  });
  return async ({ method, url, headers, body }) => {
    const query: Record<string, string[]> = {};
    for (const [name, value] of url.searchParams) query[name] = [...(query[name] ?? []), value];
    const signed = await sigv4.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query,
      // fetch sends the URL's host itself (a browser forbids setting it): signed, not sent.
      headers: { ...headers, host: url.host },
      ...(body !== undefined ? { body } : {}),
    });
    const { host: _host, ...sent } = signed.headers;
    return sent;
  };
}
