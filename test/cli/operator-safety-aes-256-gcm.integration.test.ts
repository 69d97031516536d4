import { operatorSafetySuite } from './operator-safety.js';

// Issue 12: every CLI command, stopped and running, with spool.encryption.profile aes-256-gcm (test/cli/operator-safety.ts).
operatorSafetySuite('aes-256-gcm');
