import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultProvider } from '../../../shared/lambda/credentials.js';

const saved = { ...process.env };
afterEach(() => {
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});

function lambdaEnv(values: Record<string, string | undefined>) {
  for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION']) {
    delete process.env[name];
  }
  for (const [name, value] of Object.entries(values)) if (value !== undefined) process.env[name] = value;
}

/** What stands in for the SDK's default chain in the deployed bundles (packages/cdk/src/bundling.ts). */
describe("a bundle's credentials", () => {
  it("are the role's that Lambda puts in the environment, and a client signs with them", async () => {
    lambdaEnv({ AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'token' });
    const client = new DynamoDBClient({ region: 'eu-west-1', credentialDefaultProvider: defaultProvider });
    let authorization = '';
    client.middlewareStack.add(
      () => async (args) => {
        authorization = String((args.request as { headers: Record<string, string> }).headers.authorization);
        throw new Error('signed, not sent');
      },
      { step: 'finalizeRequest', priority: 'low' },
    );
    await expect(client.send(new ListTablesCommand({}))).rejects.toThrow('signed, not sent');
    expect(authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE\/\d{8}\/eu-west-1\/dynamodb\//);
    client.destroy();
  });

  it('are read when a client first needs them, with their expiry when Lambda gives one', async () => {
    const credentials = defaultProvider();
    lambdaEnv({
      AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_CREDENTIAL_EXPIRATION: '2026-12-02T18:00:00Z',
    });
    expect(await credentials()).toEqual({
      accessKeyId: 'ASIAEXAMPLE',
      secretAccessKey: 'secret',
      expiration: new Date('2026-12-02T18:00:00Z'),
    });
  });

  it('fail the call, saying why, where the environment holds none', async () => {
    lambdaEnv({ AWS_ACCESS_KEY_ID: 'ASIAEXAMPLE' });
    await expect(defaultProvider()()).rejects.toThrow(/No AWS credentials in the environment/);
  });
});
