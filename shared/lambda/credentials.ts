/** What the SDK takes from a credential provider. */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
  accountId?: string;
}

/**
 * The credentials of a deployed function, standing in for the SDK's default provider chain in
 * the bundles (packages/cdk/src/bundling.ts aliases `@aws-sdk/credential-provider-node` to this
 * file). Lambda hands a function its role's credentials in the environment, and the chain's first
 * link reads them there; the others (profiles and SSO, web identity, credential processes,
 * container and instance metadata) never answer in Lambda, yet they and the STS and SSO clients
 * behind them were a seventh of every bundle. Tests and the local stack run the sources, with the
 * full chain.
 */
export function defaultProvider(): () => Promise<Credentials> {
  return async () => {
    const env = process.env;
    const accessKeyId = env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new Error(
        'No AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): this bundle reads only the ones Lambda sets',
      );
    }
    const credentials: Credentials = { accessKeyId, secretAccessKey };
    if (env.AWS_SESSION_TOKEN) credentials.sessionToken = env.AWS_SESSION_TOKEN;
    if (env.AWS_CREDENTIAL_EXPIRATION) credentials.expiration = new Date(env.AWS_CREDENTIAL_EXPIRATION);
    if (env.AWS_ACCOUNT_ID) credentials.accountId = env.AWS_ACCOUNT_ID;
    return credentials;
  };
}
