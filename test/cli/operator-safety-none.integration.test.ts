import { operatorSafetySuite } from './operator-safety.js';

// Issue 12: every CLI command, stopped and running, with spool.encryption.profile none (test/cli/operator-safety.ts).
operatorSafetySuite('none');
