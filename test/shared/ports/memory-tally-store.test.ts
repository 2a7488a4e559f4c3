import { MemoryTallyStore } from '../../support/memory/tallies.js';
import { tallyStoreContract } from './tally-store.contract.js';

const tallies = new MemoryTallyStore();
tallyStoreContract('MemoryTallyStore', () => tallies);
