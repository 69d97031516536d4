import { describe, expect, it } from 'vitest';
import { COMMANDS, findCommand } from '../../src/cli/commands.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { CLI, run } from '../helpers/processes.js';

describe('the CLI command table', () => {
  it('finds the longest name that matches, and the arguments after it', () => {
    expect(findCommand(['dead-letter', 'retry', '--config', 'x'])).toMatchObject({ command: { name: 'dead-letter retry' }, rest: ['--config', 'x'] });
    expect(findCommand(['status', '--json'])).toMatchObject({ command: { name: 'status' }, rest: ['--json'] });
    expect(findCommand(['--version'])).toMatchObject({ command: { name: 'version' } });
    expect(findCommand(['dead-letter'])).toBeUndefined();
    expect(findCommand(['frobnicate'])).toBeUndefined();
  });

  it('says what each command may do to the spool', () => {
    const byName = Object.fromEntries(COMMANDS.map((c) => [c.name, c.spool]));
    expect(byName).toMatchObject({ run: 'owns', status: 'reads', 'dead-letter list': 'reads', 'dead-letter retry': 'changes', 'dead-letter purge': 'changes', restore: 'changes', 'check-config': 'none' });
  });

  it('an unknown command says "unknown command" and lists the commands, exit 2', async () => {
    const r = await run(process.execPath, [CLI, 'frobnicate', '--config', 'nowhere.yaml']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    for (const c of COMMANDS) expect(r.stderr).toContain(c.name);
  });

  it('an unknown action of a command with actions names the actions, exit 2', async () => {
    const r = await run(process.execPath, [CLI, 'dead-letter', 'shred']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toContain('pacs-edge dead-letter: unknown or missing action "shred"; one of: list, show, retry, purge');
  });

  it('a command that needs a configuration says so, exit 2', async () => {
    const r = await run(process.execPath, [CLI, 'status'], { env: { PACS_EDGE_CONFIG: '' } });
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toContain('pacs-edge status: --config FILE is required');
  });
});
