import { operatorSafetySuite } from './operator-safety.js';

// Issue 12: every CLI command, stopped and running, with spool.encryption.profile chacha20-poly1305
// (issue 17: the profile of boards without AES instructions; test/cli/operator-safety.ts).
operatorSafetySuite('chacha20-poly1305');
