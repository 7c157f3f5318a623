import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, type CliRun } from '../helpers/cli';

const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** Help needs no services: these run without any address configured. */
describe('baton help without a stack', () => {
  it('prints help for every command, -v only where it shows more, and no (default: [])', async () => {
    const verbose = new Set(['tasks run', 'tasks status', 'tasks watch']);
    for (const args of [
      ['tasks', 'list'],
      ['tasks', 'show'],
      ['tasks', 'run'],
      ['tasks', 'status'],
      ['tasks', 'watch'],
      ['tasks', 'cancel'],
      ['tasks', 'runs'],
      ['discover'],
      ['config', 'show'],
      ['completion'],
    ]) {
      const h = await runCli([...args, '--help']);
      assert.equal(h.code, 0, `${args.join(' ')}: ${show(h)}`);
      assert.match(h.stdout, /^Usage: /, args.join(' '));
      assert.equal(/-v, --verbose/.test(h.stdout), verbose.has(args.join(' ')), `${args.join(' ')} -v`);
      assert.doesNotMatch(h.stdout, /\(default: \[\]\)/, args.join(' '));
    }
  });

  it('answers help as a word: baton help, baton help tasks, baton help tasks status, baton tasks help runs', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['help'], /^Usage: baton \[options\] \[command\]/],
      [['help', 'tasks'], /^Usage: baton tasks \[options\] \[command\]\n[\s\S]*^ {2}status \[options\] <task_id> +show a run's results by task id$/m],
      [['help', 'tasks', 'status'], /^Usage: baton tasks status \[options\] <task_id>/],
      [['tasks', 'help', 'runs'], /^Usage: baton tasks runs \[options\]/],
      [['help', 'discover'], /^Usage: baton discover \[options\]/],
    ];
    for (const [args, expected] of cases) {
      const h = await runCli(args);
      assert.equal(h.code, 0, `${args.join(' ')}: ${show(h)}`);
      assert.match(h.stdout, expected, args.join(' '));
    }
  });

  it('puts "Did you mean" on the same line as the error', async () => {
    const r = await runCli(['discover', '--with-identiy', 'x']);
    assert.equal(r.code, 2, show(r));
    assert.equal(r.stderr, "baton: unknown option '--with-identiy' (Did you mean --with-identity?)\n");
  });

  it('completes pki and its subcommands without any service', async () => {
    assert.match((await runCli(['__complete', ''])).stdout, /^pki$/m);
    assert.deepEqual((await runCli(['__complete', 'pki', ''])).stdout.trimEnd().split('\n'), ['init', 'issue']);
    assert.deepEqual((await runCli(['__complete', 'pki', 'issue', ''])).stdout.trimEnd().split('\n'), ['service', 'agent', 'operator']);
  });
});
