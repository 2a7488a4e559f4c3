import { afterAll, beforeAll } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { clients } from '../../shared/aws/clients.js';
import { DynamoJobStore } from '../../shared/aws/job-store.js';
import { S3PayloadStore } from '../../shared/aws/payloads.js';
import { DynamoTallyStore } from '../../shared/aws/tally-store.js';
import { jobStoreContract } from '../shared/ports/job-store.contract.js';
import { tallyStoreContract } from '../shared/ports/tally-store.contract.js';
import { startTestStack } from '../support/stack.js';

/** The ports' contracts against the DynamoDB adapters: the same tests the in-memory fakes pass. */
let stack: LocalStack;
let store: DynamoJobStore;
let tallies: DynamoTallyStore;

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
  const { doc, s3 } = clients();
  store = new DynamoJobStore(doc, stack.info.tables.jobs, new S3PayloadStore(s3, stack.info.buckets.data), 1);
  tallies = new DynamoTallyStore(doc, stack.info.tables.jobs, 1);
});
afterAll(() => stack?.stop());

jobStoreContract('DynamoJobStore', () => store);
tallyStoreContract('DynamoTallyStore', () => tallies);
