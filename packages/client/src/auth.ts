/** How the client authenticates: the vocabulary shared by the transport and the lazily loaded SigV4 signer. */

/** Adds a SigV4 signature to one request's headers (`sigv4.ts`, loaded only for IAM auth). */
export type SignRequest = (request: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string | undefined;
}) => Promise<Record<string, string>>;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export type Auth =
  /** SigV4 (an API behind IAM auth). Credentials default to the standard chain (env, profile, SSO, IMDS…) in Node. */
  | { type: 'iam'; region?: string; credentials?: AwsCredentials | (() => Promise<AwsCredentials>) }
  /** A bearer token (an API behind a JWT authorizer); a function is asked before every request. */
  | { type: 'jwt'; token: string | (() => Promise<string>) }
  /** No credentials (the local stack in LOCAL_AUTH=none); `owner` names the local principal to act as. */
  | { type: 'none'; owner?: string };
