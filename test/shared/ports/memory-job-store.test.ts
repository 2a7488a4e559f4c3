import { MemoryJobStore } from '../../support/memory/store.js';
import { jobStoreContract } from './job-store.contract.js';

const store = new MemoryJobStore({ retentionDays: 1 });
jobStoreContract('MemoryJobStore', () => store);
