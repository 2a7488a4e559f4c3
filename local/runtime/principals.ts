import { createHash } from 'node:crypto';

/** The account every local principal lives in (the emulators' own). */
export const LOCAL_ACCOUNT = '000000000000';

/** The principal `npm start` takes requests and queued messages as when nobody says otherwise. */
export const DEFAULT_LOCAL_PRINCIPAL = 'local';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * A local IAM user, shaped as AWS names one: an ARN and a unique id (`AIDA…`), stable per name so
 * owners survive a restart. API Gateway's IAM authorizer and SQS's `SenderId` both carry the id.
 */
export function localPrincipal(name: string): { userArn: string; userId: string; accountId: string } {
  const digest = createHash('sha256').update(name).digest();
  let id = '';
  for (let i = 0; id.length < 17; i++) id += BASE32[digest[i]! % 32];
  return { userArn: `arn:aws:iam::${LOCAL_ACCOUNT}:user/${name}`, userId: `AIDA${id}`, accountId: LOCAL_ACCOUNT };
}
