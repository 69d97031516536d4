#!/usr/bin/env node
import { ConfigError } from '../errors.js';
import { dispatch } from './commands.js';
import { exitCodeFor } from './exit-codes.js';

/**
 * `pacs-edge …`: every command is in the table of src/cli/commands.ts. The process ends with the
 * command's exit code once it is done (after a moment for the last log lines): nothing a
 * command left open — a worker, a timer, a socket — may keep it alive.
 */
dispatch(process.argv.slice(2)).then(
  (code) => exit(code),
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : `pacs-edge: ${(err as Error).message ?? String(err)}`);
    exit(exitCodeFor(err));
  },
);

function exit(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 100).unref();
}
