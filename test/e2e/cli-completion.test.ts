import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, runCliPipeline, type CliRun } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';

const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe('task help, environments and completion against a stack', () => {
  const fleet = useDevStack({ agents: 2, environmentpath: cliEnvironmentpath() });
  const baton = (...args: string[]): Promise<CliRun> => runCli(args, fleet.env);

  it("lists the task's parameters first in run <task> --help, and its usage line carries -E", async () => {
    const h = await baton('tasks', 'run', 'stg::where', '-E', 'staging', '--help');
    assert.equal(h.code, 0, show(h));
    assert.match(h.stdout, /^Usage: baton tasks run stg::where -E staging --zone ZONE \[options\] \[filters\]\n/);
    const headings = h.stdout.split('\n').filter((l) => /^[A-Z][\w ]*:$/.test(l));
    assert.deepEqual(headings, ['Arguments:', 'Task parameters:', 'Options:', 'Node filters:', 'Connection:']);
    const shown = await baton('tasks', '-E', 'staging', 'stg::where');
    assert.equal(shown.code, 0, show(shown));
    assert.match(shown.stdout, /^Use 'baton tasks run stg::where -E staging --zone ZONE \[filters\]' to run this task$/m);
    const ran = await baton('tasks', 'run', 'stg::where', '-E', 'staging', '--zone', 'z1', '-I', 'node1', '--json');
    assert.equal(ran.code, 0, show(ran));
  });

  it('completes Enum values, node names and recent task ids, through the bash script as installed', async () => {
    const run = await baton('tasks', 'run', 'demo::echo', '--message', 'c', '--json');
    const taskId = /"taskid": "([0-9a-f]{32})"/.exec(run.stdout)?.[1];
    assert.ok(taskId, show(run));
    // The script `baton completion bash` prints, asked as bash asks it on Tab.
    const complete = (line: string) =>
      runCliPipeline(
        `eval "$($BATON completion bash)"; COMP_LINE=${JSON.stringify(line)}; COMP_POINT=\${#COMP_LINE}; COMP_WORDS=(${line}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _baton; printf '%s\\n' "\${COMPREPLY[@]}"`,
        fleet.env,
      );
    assert.deepEqual((await complete('baton tasks run clitest::typed --level ')).stdout.trimEnd().split('\n'), ['low', 'high']);
    assert.deepEqual((await complete('baton tasks run demo::echo -I ')).stdout.trimEnd().split('\n'), ['node1', 'node2']);
    assert.ok((await complete('baton tasks status ')).stdout.split('\n').includes(taskId), 'recent task ids');
    assert.ok((await complete('baton tasks run demo::echo --rerun ')).stdout.split('\n').includes(taskId));
    assert.deepEqual((await complete('baton tasks run demo::ec')).stdout.trimEnd().split('\n'), ['echo'], 'after the colons, as bash shows it');
    // Through npx: the same candidates for `npx baton ...`.
    const npx = await runCliPipeline(
      `eval "$($BATON completion bash)"; COMP_LINE='npx baton tasks run demo::echo -I '; COMP_POINT=\${#COMP_LINE}; COMP_WORDS=(npx baton tasks run demo::echo -I ''); COMP_CWORD=6; _baton_npx; printf '%s\\n' "\${COMPREPLY[@]}"`,
      fleet.env,
    );
    assert.deepEqual(npx.stdout.trimEnd().split('\n'), ['node1', 'node2'], show(npx));
  });

  it('completes through the zsh script as installed, in a real zsh with compinit', async () => {
    const run = await baton('tasks', 'run', 'demo::echo', '--message', 'z', '--json');
    const taskId = /"taskid": "([0-9a-f]{32})"/.exec(run.stdout)?.[1];
    assert.ok(taskId, show(run));
    // zsh runs a completion function only inside its line editor, so the function is called as
    // the editor calls it (words and CURRENT as zsh splits the line; the last word under the
    // cursor) with compadd replaced by one that prints what it was given. The registration is
    // checked in _comps, where compdef puts it; _default stands for zsh's default completion.
    const zsh = (lines: string[]) =>
      runCliPipeline(
        [
          'command -v zsh >/dev/null || { echo "zsh is not installed (scripts/install-deps.sh installs it)" >&2; exit 97; }',
          `zsh -f -c ${shellWord(
            [
              'autoload -Uz compinit && compinit -u -D',
              'eval "$($=BATON completion zsh)"',
              'print -r -- "registered: $_comps[baton] $_comps[npx]"',
              'compadd() { local a; for a in "$@"; do [[ $a == -- ]] || print -r -- "$a"; done; }',
              '_default() { print -r -- "(default completion)"; }',
              'complete() { words=("${(@Q)${(z)1}}"); [[ $1 == *" " ]] && words+=(""); CURRENT=${#words}; print -r -- "== $1"; _baton; }',
              ...lines.map((l) => `complete ${shellWord(l)}`),
            ].join('\n'),
          )}`,
        ].join('\n'),
        fleet.env,
      );
    const r = await zsh([
      'baton ',
      'baton tasks run demo::ec',
      'baton tasks run clitest::typed --level ',
      'baton tasks run demo::echo -I ',
      'baton tasks status ',
      'npx baton tasks run demo::echo -I ',
      'npx other ',
      'npx ba',
      'baton pki issue ',
    ]);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stderr, '', show(r));
    const [registered, ...rest] = r.stdout.trimEnd().split('\n');
    assert.equal(registered, 'registered: _baton _baton', 'compdef registers _baton for baton and npx');
    const answers = new Map<string, string[]>();
    let line = '';
    for (const l of rest) {
      if (l.startsWith('== ')) answers.set((line = l.slice(3)), []);
      else answers.get(line)!.push(l);
    }
    assert.deepEqual(answers.get('baton '), ['tasks', 'discover', 'dev', 'pki', 'config', 'completion', 'help']);
    // zsh keeps colons in a word: whole task names, which it matches against what was typed.
    assert.ok(answers.get('baton tasks run demo::ec')!.includes('demo::echo'), show(r));
    assert.deepEqual(answers.get('baton tasks run clitest::typed --level '), ['low', 'high']);
    assert.deepEqual(answers.get('baton tasks run demo::echo -I '), ['node1', 'node2']);
    assert.ok(answers.get('baton tasks status ')!.includes(taskId), 'recent task ids');
    assert.deepEqual(answers.get('npx baton tasks run demo::echo -I '), ['node1', 'node2']);
    assert.deepEqual(answers.get('npx other '), ['(default completion)'], "another npx command keeps zsh's default completion");
    assert.deepEqual(answers.get('npx ba'), ['(default completion)']);
    assert.deepEqual(answers.get('baton pki issue '), ['service', 'agent', 'operator']);
  });
});

/** A string as one single-quoted sh word (the tests' own text, never network input). */
function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
