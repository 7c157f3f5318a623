import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { NodeView } from './filter-language';
import { packageRoot } from './package-root';
import { Policy, PolicyError, type PolicyRequest } from './policy';

const web1: NodeView = { identity: 'web1', facts: { role: 'web' }, classes: ['role::web'], agents: [] };
const web2: NodeView = { identity: 'web2', facts: { role: 'web' }, classes: ['role::web'], agents: [] };
const db1: NodeView = { identity: 'db1', facts: { role: 'db' }, classes: ['role::db'], agents: [] };

const EXAMPLE = `
rules:
  - name: no-prod-restarts
    effect: deny
    tasks: ['acme::restart']
    environments: [production]
  - name: web-team
    effect: allow
    callers: [cert=alice, /^cert=web-/]
    actions: [run, cancel, discover, read]
    tasks: ['acme::*', service]
    nodes: "role=web"
  - name: everyone-reads
    effect: allow
    actions: read
`;

function parseError(text: string): string {
  try {
    Policy.parse(text, '/etc/baton/policy.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected a PolicyError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('the policy was accepted');
}

const run = (caller: string, task: string, nodes: NodeView[], environment = 'production'): PolicyRequest => ({
  caller,
  action: 'run',
  task,
  environment,
  nodes,
});

describe('Policy', () => {
  const policy = Policy.parse(EXAMPLE, '/etc/baton/policy.yaml');

  it('lets the first matching rule decide', () => {
    const denied = policy.decide(run('cert=alice', 'acme::restart', [web1]));
    assert.deepEqual(denied, {
      allowed: false,
      rule: 'no-prod-restarts',
      message: "cert=alice may not run acme::restart in production: rule 'no-prod-restarts' denies it",
    });
    const allowed = policy.decide(run('cert=alice', 'acme::restart', [web1], 'staging'));
    assert.deepEqual(allowed, { allowed: true, rule: 'web-team', message: '' });
  });

  it('denies by default once a policy is configured, naming the file', () => {
    const d = policy.decide(run('cert=bob', 'acme::deploy', [web1]));
    assert.equal(d.allowed, false);
    assert.equal(d.rule, undefined);
    assert.equal(d.message, 'cert=bob may not run acme::deploy in production: no rule allows it (policy /etc/baton/policy.yaml, default deny)');
  });

  it('allows what no rule matches under default: allow', () => {
    const open = Policy.parse('default: allow\nrules:\n  - {name: x, effect: deny, callers: [cert=bob]}\n', 'p.yaml');
    assert.equal(open.decide(run('cert=alice', 'demo::echo', [db1])).allowed, true);
    assert.equal(open.decide(run('cert=bob', 'demo::echo', [db1])).rule, 'x');
  });

  it('matches callers exactly or by /regex/', () => {
    assert.equal(policy.decide(run('cert=web-carol', 'service', [web1])).allowed, true);
    assert.equal(policy.decide(run('cert=alice2', 'service', [web1])).allowed, false);
    assert.equal(policy.decide(run('cert=xweb-carol', 'service', [web1])).allowed, false);
  });

  it('matches task globs across :: but not a module alone', () => {
    const p = Policy.parse("rules:\n  - {name: a, effect: allow, tasks: ['acme::*', 'demo*']}\n", 'p');
    const decide = (task: string) => p.decide({ caller: 'c', action: 'run', task, environment: 'production', nodes: [] }).allowed;
    assert.equal(decide('acme::restart'), true);
    assert.equal(decide('acme'), false);
    assert.equal(decide('demo'), true);
    assert.equal(decide('demo::echo'), true);
    assert.equal(decide('acmex::restart'), false);
  });

  it('matches a nodes rule only when every selected node matches it, and says which node did not', () => {
    assert.equal(policy.decide(run('cert=alice', 'service', [web1, web2])).allowed, true);
    const d = policy.decide(run('cert=alice', 'service', [web1, db1]));
    assert.equal(d.allowed, false);
    assert.match(d.message, /no rule allows it .*; rule 'web-team' allows it only where every node matches role=web, and db1 does not$/);
  });

  it('never matches a nodes rule for reads, nor without the nodes', () => {
    const p = Policy.parse('rules:\n  - {name: web, effect: allow, nodes: "role=web"}\n', 'p');
    assert.equal(p.decide({ caller: 'c', action: 'read', task: 'demo::echo', environment: 'production' }).allowed, false);
    assert.equal(p.decide({ caller: 'c', action: 'run', task: 'demo::echo', environment: 'production' }).allowed, false);
    assert.equal(p.needsNodes({ caller: 'c', action: 'run', task: 'demo::echo' }), true);
    assert.equal(p.needsNodes({ caller: 'c', action: 'read', task: 'demo::echo' }), false);
    assert.equal(policy.needsNodes(run('cert=bob', 'service', [])), false, 'web-team does not name bob');
  });

  it('never matches a rule with tasks or environments for requests without them', () => {
    const p = Policy.parse(
      'rules:\n  - {name: prod-only, effect: allow, environments: [production]}\n  - {name: any-echo, effect: allow, tasks: [demo::echo]}\n',
      'p',
    );
    assert.equal(p.decide({ caller: 'c', action: 'discover', nodes: [web1] }).allowed, false);
    assert.equal(p.decide({ caller: 'c', action: 'read' }).allowed, false);
    assert.equal(p.decide({ caller: 'c', action: 'read', task: 'demo::echo' }).rule, 'any-echo');
    assert.equal(p.decide({ caller: 'c', action: 'discover', nodes: [web1] }).message, 'c may not discover nodes: no rule allows it (policy p, default deny)');
  });

  it('names the subject of a read or cancel in the denial', () => {
    const d = policy.decide({
      caller: 'cert=bob',
      action: 'cancel',
      task: 'acme::deploy',
      environment: 'production',
      nodes: [db1],
      subject: 'run 0123 (acme::deploy in production)',
    });
    assert.equal(d.message, 'cert=bob may not cancel run 0123 (acme::deploy in production): no rule allows it (policy /etc/baton/policy.yaml, default deny)');
  });

  it('accepts examples/policy.yaml and decides as its comments say', () => {
    const example = Policy.parse(readFileSync(join(packageRoot(), 'examples', 'policy.yaml'), 'utf8'), 'examples/policy.yaml');
    assert.equal(example.decide(run('cert=platform-ops', 'acme::restart', [web1])).rule, 'no-prod-restarts');
    assert.equal(example.decide(run('cert=web-dave', 'acme::deploy', [web1, web2])).rule, 'web-team');
    assert.equal(example.decide(run('cert=web-dave', 'acme::deploy', [web1, db1])).allowed, false);
    assert.equal(example.decide({ caller: 'cert=alice', action: 'discover', nodes: [web1] }).rule, 'web-team-discovery');
    assert.equal(example.decide({ caller: 'cert=anyone', action: 'read', task: 'acme::deploy' }).rule, 'readers');
    assert.equal(example.decide(run('cert=platform-ops', 'acme::deploy', [db1])).rule, 'platform');
  });

  it('treats an empty file as deny everything', () => {
    assert.equal(Policy.parse('', 'p').decide({ caller: 'c', action: 'read' }).allowed, false);
  });

  it('rejects a bad policy with one line naming the rule and the field', () => {
    assert.equal(
      parseError('rules:\n  - {name: a, effect: allow, colors: [red]}\n'),
      "policy /etc/baton/policy.yaml: rule 1 'a': unknown key 'colors'; expected name, effect, callers, actions, tasks, environments, nodes",
    );
    assert.equal(
      parseError('rules:\n  - {name: a, effect: allow}\n  - {name: b, effect: maybe}\n'),
      "policy /etc/baton/policy.yaml: rule 2 'b': effect must be allow or deny",
    );
    assert.equal(
      parseError("rules:\n  - {name: a, effect: allow, callers: ['/[/']}\n"),
      "policy /etc/baton/policy.yaml: rule 1 'a': callers[0] /[/ is not a valid regular expression: missing closing ]: `[` (regular expressions are RE2 syntax)",
    );
    assert.match(
      parseError("rules:\n  - {name: a, effect: allow, tasks: ['acme/../x']}\n"),
      /^policy \/etc\/baton\/policy.yaml: rule 1 'a': tasks\[0\] must be a name or a glob of \[a-z0-9_\*\] parts/,
    );
    assert.match(parseError('rules:\n  - {name: a, effect: allow, nodes: "role=web and"}\n'), /^policy \/etc\/baton\/policy.yaml: rule 1 'a': nodes: .*column/);
    assert.match(
      parseError('rules:\n  - {name: a, effect: allow, nodes: "bolt_task(\'0123456789abcdef0123456789abcdef\').exitcode > 0"}\n'),
      /nodes may not use bolt_task/,
    );
    assert.equal(
      parseError('rules:\n  - {name: a, effect: allow, actions: [run, delete]}\n'),
      "policy /etc/baton/policy.yaml: rule 1 'a': actions has 'delete'; expected run, cancel, discover, read",
    );
    assert.equal(
      parseError('rules:\n  - {name: a, effect: allow}\n  - {name: a, effect: deny}\n'),
      "policy /etc/baton/policy.yaml: rule 2 'a': name is used by an earlier rule; rule names must be unique",
    );
    assert.equal(parseError('rules:\n  - {effect: deny}\n'), "policy /etc/baton/policy.yaml: rule 1: missing 'name'");
    assert.equal(parseError('default: maybe\n'), 'policy /etc/baton/policy.yaml: default must be equal to one of the allowed values (allow or deny)');
    assert.equal(parseError('rule: []\n'), "policy /etc/baton/policy.yaml: unknown key 'rule'; expected default and rules");
    assert.match(parseError('rules: [\n'), /^policy \/etc\/baton\/policy.yaml: not valid YAML: /);
    assert.equal(parseError('- a\n'), 'policy /etc/baton/policy.yaml: expected a mapping with default and rules');
  });
});
