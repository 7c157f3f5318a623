import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { FactOperator, Filter } from '../../gen/baton/v1/filter';
import { NodeResult, NodeState } from '../../gen/baton/v1/run';
import { InvalidArgumentError } from '../../lib/errors';
import { INDEX_CHUNK_NODES, RedisKeys } from '../../lib/redis';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { compileFilter, evaluate, factAt as lookupFact } from '../../lib/filter-language';
import { parseResultWhere, resultMatches } from '../../lib/bolt-task-results';
import { runDiscovery, type RunDiscoveryOptions } from './discovery-plan';
import { NodeIndex, type IndexedNode } from './node-index';

const redis = useRedisServer();

/** A small fleet, as agents would report it. */
const FLEET: Array<Pick<Hello, 'identity' | 'classes' | 'agents'> & { facts: Record<string, unknown> }> = [
  {
    identity: 'web1.example.com',
    classes: ['role::web', 'Profile::Base'],
    agents: ['bolt_tasks', 'rpcutil'],
    facts: { os: { family: 'RedHat', release: { major: '8' } }, processors: { count: 4 }, env: 'prod' },
  },
  {
    identity: 'web2.example.com',
    classes: ['role::web', 'profile::base'],
    agents: ['bolt_tasks'],
    facts: { os: { family: 'Debian', release: { major: '12' } }, processors: { count: 16 }, env: 'Prod' },
  },
  {
    identity: 'db1.example.com',
    classes: ['role::db', 'profile::base'],
    agents: ['bolt_tasks'],
    facts: { os: { family: 'RedHat', release: { major: '9' } }, processors: { count: '32' }, is_virtual: true },
  },
  { identity: 'win1', classes: ['role::web'], agents: ['rpcutil'], facts: { os: { family: 'windows' }, 'dotted.name': 'x' } },
];

function nodes(): IndexedNode[] {
  return FLEET.map((n) => ({ ...n, connected: true, lastSeenMs: 0, version: '1', owner: '' }));
}

/** The in-memory path: the compiled filter evaluated on each node. */
function select(filter: Partial<Filter>): string[] {
  const query = compileFilter(Filter.fromPartial(filter));
  return nodes()
    .filter((n) => evaluate(query, n))
    .map((n) => n.identity);
}

/** The index path: the compiled filter planned against Redis. */
async function discover(index: NodeIndex, filter: Partial<Filter> | undefined, options?: RunDiscoveryOptions) {
  return runDiscovery(index, compileFilter(filter && Filter.fromPartial(filter)), options);
}

function fact(f: string, operator: FactOperator, value: string) {
  return { fact: f, operator, value };
}

describe('compileFilter', () => {
  it('selects every node with an empty or absent filter', () => {
    assert.equal(select({}).length, 4);
    assert.equal(nodes().filter((n) => evaluate(compileFilter(undefined), n)).length, 4);
  });

  it('ORs identities, exact or /regex/ (case-sensitive)', () => {
    assert.deepEqual(select({ identities: ['win1', '/^web\\d\\./'] }), ['web1.example.com', 'web2.example.com', 'win1']);
    assert.deepEqual(select({ identities: ['WIN1'] }), []);
    assert.deepEqual(select({ identities: ['/^WEB/'] }), []);
  });

  it('ANDs classes, exact case-insensitively or /regex/i', () => {
    assert.deepEqual(select({ classes: ['role::web', 'PROFILE::BASE'] }), ['web1.example.com', 'web2.example.com']);
    assert.deepEqual(select({ classes: ['/^ROLE::/', '/base$/'] }), ['web1.example.com', 'web2.example.com', 'db1.example.com']);
    assert.deepEqual(select({ classes: ['role'] }), []);
  });

  it('ANDs agents, exact or /regex/', () => {
    assert.deepEqual(select({ agents: ['bolt_tasks', 'rpcutil'] }), ['web1.example.com']);
    assert.deepEqual(select({ agents: ['/^rpc/'] }), ['web1.example.com', 'win1']);
  });

  it('compares facts at dotted paths: strings case-insensitively, numbers numerically', () => {
    assert.deepEqual(select({ facts: [fact('os.family', FactOperator.FACT_OPERATOR_EQUAL, 'redhat')] }), ['web1.example.com', 'db1.example.com']);
    assert.deepEqual(select({ facts: [fact('env', FactOperator.FACT_OPERATOR_EQUAL, 'PROD')] }), ['web1.example.com', 'web2.example.com']);
    // '16' > '4' and '32' (a string fact) > '8' numerically, although not as text.
    assert.deepEqual(select({ facts: [fact('processors.count', FactOperator.FACT_OPERATOR_GREATER_EQUAL, '8')] }), ['web2.example.com', 'db1.example.com']);
    assert.deepEqual(select({ facts: [fact('processors.count', FactOperator.FACT_OPERATOR_LESS, '5')] }), ['web1.example.com']);
    assert.deepEqual(select({ facts: [fact('os.release.major', FactOperator.FACT_OPERATOR_GREATER, '8.5')] }), ['web2.example.com', 'db1.example.com']);
    assert.deepEqual(select({ facts: [fact('is_virtual', FactOperator.FACT_OPERATOR_EQUAL, 'TRUE')] }), ['db1.example.com']);
  });

  it('matches MATCHES case-insensitively and never matches a missing fact, not even with !=', () => {
    assert.deepEqual(select({ facts: [fact('os.family', FactOperator.FACT_OPERATOR_MATCHES, '^(red|deb)')] }), [
      'web1.example.com',
      'web2.example.com',
      'db1.example.com',
    ]);
    assert.deepEqual(select({ facts: [fact('os.family', FactOperator.FACT_OPERATOR_NOT_EQUAL, 'windows')] }), [
      'web1.example.com',
      'web2.example.com',
      'db1.example.com',
    ]);
    assert.deepEqual(select({ facts: [fact('env', FactOperator.FACT_OPERATOR_NOT_EQUAL, 'prod')] }), []);
    assert.deepEqual(select({ facts: [fact('no.such.fact', FactOperator.FACT_OPERATOR_MATCHES, '.*')] }), []);
  });

  it('ANDs facts and every kind of filter together', () => {
    assert.deepEqual(
      select({
        identities: ['/example/'],
        classes: ['role::web'],
        agents: ['bolt_tasks'],
        facts: [fact('os.family', FactOperator.FACT_OPERATOR_EQUAL, 'debian'), fact('processors.count', FactOperator.FACT_OPERATOR_GREATER, '8')],
      }),
      ['web2.example.com'],
    );
  });

  it('refuses a regex RE2 cannot run, naming the field and the construct, and runs a pathological one in linear time', () => {
    assert.throws(
      () => compileFilter(Filter.fromPartial({ identities: ['/(a)\\1/'], facts: [fact('os', FactOperator.FACT_OPERATOR_MATCHES, 'a(?=b)')] })),
      (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError);
        assert.deepEqual(
          err.violations.map((v) => v.description),
          [
            '/(a)\\1/ uses a backreference (\\1 ... \\9), which filters do not support (RE2 syntax, matched in linear time)',
            '/a(?=b)/ uses a lookahead ((?= or (?!), which filters do not support (RE2 syntax, matched in linear time)',
          ],
        );
        return true;
      },
    );
    const started = process.hrtime.bigint();
    const many = Array.from({ length: 200 }, (_, i) => ({
      identity: `${'a'.repeat(30 + i)}!`,
      facts: { name: `${'a'.repeat(30 + i)}!` },
      classes: [],
      agents: [],
    }));
    const query = compileFilter(Filter.fromPartial({ identities: ['/^(a|a)*$/', '/!/'], compound: ['name =~ /^(a|a)*$/ or name =~ /^(a+)+$/'] }));
    assert.equal(many.filter((n) => evaluate(query, n)).length, 0);
    assert.ok(process.hrtime.bigint() - started < 1_000_000_000n, 'within 1 s (a backtracking engine needs hours for one of these)');
  });

  it('finds a fact whose name contains dots literally', () => {
    assert.equal(lookupFact(FLEET[3].facts, 'dotted.name'), 'x');
    assert.equal(lookupFact(FLEET[0].facts, 'os.release.major'), '8');
    assert.equal(lookupFact(FLEET[0].facts, 'os.release.major.minor'), undefined);
  });

  it('rejects invalid regular expressions, unset operators and compound syntax errors, naming each', () => {
    assert.throws(
      () =>
        compileFilter(
          Filter.fromPartial({
            identities: ['/(/'],
            facts: [fact('os', FactOperator.FACT_OPERATOR_UNSPECIFIED, 'x'), fact('os', FactOperator.FACT_OPERATOR_MATCHES, '[')],
            compound: ['role::web and ('],
          }),
        ),
      (err: unknown) => {
        assert.ok(err instanceof InvalidArgumentError);
        assert.deepEqual(
          err.violations.map((v) => v.field),
          ['filter.compound[0]', 'filter.identities[0]', 'filter.facts[0].operator', 'filter.facts[1].value'],
        );
        assert.match(
          err.message,
          /^filter\.compound\[0\]: expected .*column \d+.*; filter\.identities\[0\]: \/\(\/ is not a valid regular expression: .*; filter\.facts\[0\]\.operator: not set; /,
        );
        // Each description says what is wrong; the field is named beside it, never inside it again.
        for (const v of err.violations) assert.ok(!v.description.includes(v.field), `${v.field}: ${v.description}`);
        return true;
      },
    );
  });
});

describe('runDiscovery on online and offline nodes', () => {
  it('selects online nodes of the index only, unless offline ones are asked for', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    const now = Date.now();
    for (const n of FLEET) await index.upsert(Hello.fromPartial(n), `s-${n.identity}`, now);
    await index.markOffline('web2.example.com', 's-web2.example.com');
    await index.upsert(Hello.fromPartial(FLEET[2]), 's-db1.example.com', now - 31_000); // stale heartbeat
    const web = { classes: ['/./'] };
    assert.deepEqual((await discover(index, web, { nowMs: now })).online, ['web1.example.com', 'win1']);
    const withOffline = await discover(index, web, { nowMs: now, listOffline: true });
    assert.deepEqual([...withOffline.online, ...withOffline.offline].sort(), ['db1.example.com', 'web1.example.com', 'web2.example.com', 'win1']);
    const redhat = { facts: [fact('os.family', FactOperator.FACT_OPERATOR_EQUAL, 'RedHat')] };
    assert.deepEqual((await discover(index, redhat, { nowMs: now })).online, ['web1.example.com']);
  });
});

describe('runDiscovery (the Redis index with set algebra)', () => {
  const E = FactOperator.FACT_OPERATOR_EQUAL;
  /** Every filter form the proto Filter has; the index must select what the in-memory matcher does. */
  const FORMS: Array<[string, Partial<Filter>, string[]]> = [
    ['empty', {}, ['db1.example.com', 'web1.example.com', 'web2.example.com', 'win1']],
    ['identity exact, ORed', { identities: ['win1', 'db1.example.com', 'nosuch'] }, ['db1.example.com', 'win1']],
    ['identity regex', { identities: ['/^web\\d/'] }, ['web1.example.com', 'web2.example.com']],
    ['class exact, case-insensitive', { classes: ['PROFILE::BASE'] }, ['db1.example.com', 'web1.example.com', 'web2.example.com']],
    ['classes ANDed, with a regex', { classes: ['/^role::w/', 'profile::base'] }, ['web1.example.com', 'web2.example.com']],
    ['class matching nothing', { classes: ['role::none'] }, []],
    ['agent exact and regex', { agents: ['bolt_tasks', '/^rpc/'] }, ['web1.example.com']],
    ['fact equality, case-insensitive', { facts: [fact('os.family', E, 'REDHAT')] }, ['db1.example.com', 'web1.example.com']],
    ['fact equality on a boolean', { facts: [fact('is_virtual', E, 'true')] }, ['db1.example.com']],
    ['fact equality on a number given as text', { facts: [fact('processors.count', E, '32.0')] }, ['db1.example.com']],
    ['fact with a literal dot in its name', { facts: [fact('dotted.name', E, 'X')] }, ['win1']],
    ['numeric range', { facts: [fact('processors.count', FactOperator.FACT_OPERATOR_GREATER, '4')] }, ['db1.example.com', 'web2.example.com']],
    ['numeric <=', { facts: [fact('os.release.major', FactOperator.FACT_OPERATOR_LESS_EQUAL, '9')] }, ['db1.example.com', 'web1.example.com']],
    [
      'fact != (in memory; a missing fact never matches)',
      { facts: [fact('os.family', FactOperator.FACT_OPERATOR_NOT_EQUAL, 'redhat')] },
      ['web2.example.com', 'win1'],
    ],
    ['fact =~ (in memory)', { facts: [fact('os.family', FactOperator.FACT_OPERATOR_MATCHES, '^(deb|win)')] }, ['web2.example.com', 'win1']],
    ['text ordering (in memory)', { facts: [fact('env', FactOperator.FACT_OPERATOR_GREATER_EQUAL, 'p')] }, ['web1.example.com', 'web2.example.com']],
    [
      'every kind at once',
      {
        identities: ['/example/'],
        classes: ['role::web'],
        agents: ['bolt_tasks'],
        facts: [fact('processors.count', FactOperator.FACT_OPERATOR_LESS, '10'), fact('env', FactOperator.FACT_OPERATOR_NOT_EQUAL, 'dev')],
      },
      ['web1.example.com'],
    ],
  ];

  async function fleetIndex(): Promise<NodeIndex> {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    for (const n of FLEET) await index.upsert(Hello.fromPartial(n), `s-${n.identity}`);
    return index;
  }

  it('selects with every filter form what the in-memory matcher selects', async () => {
    const index = await fleetIndex();
    for (const [name, filter, expected] of FORMS) {
      const found = await discover(index, filter);
      assert.deepEqual(found.online, expected, name);
      assert.deepEqual(found.online, [...select(filter)].sort(), `${name}: index and in-memory matcher disagree`);
      assert.equal(found.offlineCount, 0, name);
    }
  });

  it('selects the same with every filter form and compound expression whether the sets have bitmaps or not', async () => {
    for (const bitmapMinMembers of [1, 2]) {
      const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10, bitmapMinMembers);
      for (const n of FLEET) await index.upsert(Hello.fromPartial(n), `s-${n.identity}`);
      for (const [name, filter, expected] of FORMS)
        assert.deepEqual((await discover(index, filter)).online, expected, `${name} (bitmaps from ${bitmapMinMembers})`);
      for (const text of [
        'role::web and os.family=redhat',
        'not profile::base',
        '(role::web or role::db) and not (env=prod or is_virtual=true)',
        'processors.count >= 16 or win1',
      ]) {
        assert.deepEqual(
          (await discover(index, { compound: [text] })).online,
          [...select({ compound: [text] })].sort(),
          `${text} (bitmaps from ${bitmapMinMembers})`,
        );
      }
    }
  });

  it('finds nodes registered through another scheduler replica, and their new facts', async () => {
    const prefix = uniquePrefix();
    const mine = new NodeIndex(redis.client(), new RedisKeys(prefix), 10, 1);
    const other = new NodeIndex(redis.client(), new RedisKeys(prefix), 10, 1);
    for (const n of FLEET.slice(0, 2)) await mine.upsert(Hello.fromPartial(n), `s-${n.identity}`);
    const redhat = { facts: [fact('os.family', E, 'redhat')] };
    assert.deepEqual((await discover(mine, redhat)).online, ['web1.example.com']);
    assert.deepEqual((await discover(mine, { identities: ['/^(db|win)/'] })).online, []);
    for (const n of FLEET.slice(2)) await other.upsert(Hello.fromPartial(n), `s-${n.identity}`);
    await other.upsert(Hello.fromPartial({ ...FLEET[0], facts: { os: { family: 'Debian' } } }), 's-web1.example.com');
    assert.deepEqual((await discover(mine, redhat)).online, ['db1.example.com']);
    assert.deepEqual((await discover(mine, { identities: ['/^(db|win)/'] })).online, ['db1.example.com', 'win1']);
    assert.deepEqual((await discover(mine, undefined)).online, ['db1.example.com', 'web1.example.com', 'web2.example.com', 'win1']);
  });

  it('answers a numeric range as the in-memory matcher does, sets and bitmaps alike', async () => {
    const index = await fleetIndex();
    const cases: Array<[string, string]> = [
      ['processors.count', '4'],
      ['processors.count', '16'],
      ['os.release.major', '9'],
      ['processors.count', '100'],
    ];
    for (const [path, value] of cases) {
      for (const operator of [FactOperator.FACT_OPERATOR_GREATER, FactOperator.FACT_OPERATOR_LESS_EQUAL, FactOperator.FACT_OPERATOR_EQUAL]) {
        const filter = { facts: [fact(path, operator, value)] };
        const expected = [...select({ facts: [fact(path, operator, value)] })].sort();
        assert.deepEqual((await discover(index, filter)).online, expected, `${path} ${operator} ${value}`);
      }
    }
  });

  it('counts matches that are offline (disconnected or stale) and lists them when asked', async () => {
    const index = await fleetIndex();
    const now = Date.now();
    await index.markOffline('web2.example.com', 's-web2.example.com');
    await index.upsert(Hello.fromPartial(FLEET[2]), 's-db1.example.com', now - 31_000); // stale heartbeat
    const base = { classes: ['profile::base'] };
    assert.deepEqual(await discover(index, base, { nowMs: now }), { online: ['web1.example.com'], offlineCount: 2, offline: [] });
    assert.deepEqual(await discover(index, base, { nowMs: now, listOffline: true }), {
      online: ['web1.example.com'],
      offlineCount: 2,
      offline: ['db1.example.com', 'web2.example.com'],
    });
    const all = await discover(index, undefined, { nowMs: now, listOffline: true });
    assert.deepEqual(all, { online: ['web1.example.com', 'win1'], offlineCount: 2, offline: ['db1.example.com', 'web2.example.com'] });
    const notDeb = { facts: [fact('os.family', FactOperator.FACT_OPERATOR_NOT_EQUAL, 'windows')] };
    assert.deepEqual(await discover(index, notDeb, { nowMs: now }), { online: ['web1.example.com'], offlineCount: 2, offline: [] });
  });

  it('answers across index chunks as the in-memory matcher does, and marks nodes of any chunk offline', async () => {
    // More nodes than one chunk holds: the fleet's nodes get ids in the second chunk. A low
    // bitmap threshold gives memberships of both forms in both chunks.
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10, 64);
    const filler = Array.from({ length: INDEX_CHUNK_NODES + 100 }, (_, i) =>
      Hello.fromPartial({
        identity: `f${String(i).padStart(5, '0')}`,
        facts: { rack: `r${i % 5}`, processors: { count: i % 40 }, serial: `S${i}`, os: { family: i % 7 === 0 ? 'RedHat' : 'Debian' } },
        classes: [i % 3 === 0 ? 'role::web' : 'role::db', ...(i % 500 === 0 ? ['profile::base'] : [])],
        agents: ['bolt_tasks'],
      }),
    );
    await Promise.all(filler.map((h) => index.upsert(h, `s-${h.identity}`)));
    for (const n of FLEET) await index.upsert(Hello.fromPartial(n), `s-${n.identity}`);
    assert.deepEqual([...(await index.chunksOf(['f00000', 'win1'])).keys()], [0, 1], 'the fleet is in the second chunk');
    const views = await index.list();
    assert.equal(views.length, filler.length + FLEET.length);
    const expect = (filter: Partial<Filter>) => {
      const query = compileFilter(Filter.fromPartial(filter));
      return views
        .filter((v) => evaluate(query, v))
        .map((v) => v.identity)
        .sort();
    };
    const filters: Array<Partial<Filter>> = [
      ...FORMS.map(([, filter]) => filter),
      { facts: [fact('rack', E, 'r3')] },
      { facts: [fact('serial', E, 'S4100')] },
      { facts: [fact('processors.count', FactOperator.FACT_OPERATOR_GREATER_EQUAL, '31')] },
      { classes: ['profile::base'], facts: [fact('os.family', E, 'redhat')] },
      { compound: ['role::web and not rack=r1'] },
      { compound: ['/^role::/ and processors.count < 3 or win1'] },
      { identities: ['/^f0409/'] },
    ];
    for (const filter of filters) {
      const found = await discover(index, filter, { listOffline: true });
      assert.deepEqual([...found.online, ...found.offline].sort(), expect(filter), JSON.stringify(filter));
      assert.equal(found.offlineCount, 0, JSON.stringify(filter));
    }
    assert.ok(expect({ facts: [fact('rack', E, 'r3')] }).length > 800, 'a filter selecting in both chunks');
    // A node of each chunk goes offline: both count as offline matches.
    assert.equal(await index.markOffline('f00003', 's-f00003'), true);
    assert.equal(await index.markOffline('web2.example.com', 's-web2.example.com'), true);
    const web = await discover(index, { classes: ['role::web'] }, { listOffline: true });
    assert.deepEqual(web.offline, ['f00003', 'web2.example.com']);
    assert.equal(web.online.length + web.offlineCount, expect({ classes: ['role::web'] }).length);
    const presence = await index.presence(['f00003', 'win1', 'nosuch']);
    assert.deepEqual([...presence.keys()].sort(), ['f00003', 'win1']);
    assert.equal(presence.get('win1')?.connected, true);
    assert.equal(presence.get('f00003')?.connected, false);
  });

  it('follows a node whose facts changed: the old value no longer selects it', async () => {
    const index = await fleetIndex();
    await index.upsert(Hello.fromPartial({ ...FLEET[3], facts: { os: { family: 'Debian' } } }), 's-win1');
    const windows = { facts: [fact('os.family', E, 'windows')] };
    assert.deepEqual((await discover(index, windows)).online, []);
    const debian = { facts: [fact('os.family', E, 'debian')] };
    assert.deepEqual((await discover(index, debian)).online, ['web2.example.com', 'win1']);
  });

  it('rejects a bad filter with INVALID_ARGUMENT before touching the index', async () => {
    const index = await fleetIndex();
    await assert.rejects(discover(index, { identities: ['/(/'] }), InvalidArgumentError);
  });

  it('answers compound expressions (and, or, not, !, parentheses, fact(), classes) as the in-memory evaluator does', async () => {
    const index = await fleetIndex();
    const cases: Array<[string, string[]]> = [
      ['role::web and os.family=redhat', ['web1.example.com']],
      ['role::db or /^role::w/', ['db1.example.com', 'web1.example.com', 'web2.example.com', 'win1']],
      ['not profile::base', ['win1']],
      ['!role::web and processors.count >= 16', ['db1.example.com']],
      ["fact('processors.count') > 4 and not (os.family == 'debian')", ['db1.example.com']],
      ['profile::base and not os.family=~/^red/', ['web2.example.com']],
      ['(role::web or role::db) and not (env=prod or is_virtual=true)', ['win1']],
    ];
    for (const [text, expected] of cases) {
      const filter = { compound: [text] };
      assert.deepEqual((await discover(index, filter)).online, expected, text);
      assert.deepEqual((await discover(index, filter)).online, [...select({ compound: [text] })].sort(), `${text}: index and evaluator disagree`);
    }
  });

  it('asks the results source for the matches of each bolt_task term, or for the known nodes failing one that nodes outside the run satisfy', async () => {
    const index = await fleetIndex();
    const a = 'a'.repeat(32);
    const b = 'b'.repeat(32);
    const asked: Array<[string, string[], string]> = [];
    const items = [NodeResult.fromPartial({ host: 'web1.example.com', exitcode: 2, completed: true, stdout: 'x', callerid: 'u' })];
    const runResults = (id: string, fields: string[], where?: string) => {
      asked.push([id, fields, where ?? '']);
      return Promise.resolve(where ? items.filter((r) => resultMatches(parseResultWhere(where, id), r)) : items);
    };
    const text = `bolt_task('${a}').exitcode > 0 and bolt_task('${a}').stdout =~ /x/ or bolt_task('${b}').caller == 'u' or bolt_task('${b}').known == false`;
    assert.deepEqual((await discover(index, { compound: [text] }, { runResults })).online, ['db1.example.com', 'web1.example.com', 'web2.example.com', 'win1']);
    assert.deepEqual(asked.sort(), [
      [a, ['completed', 'exitcode'], `bolt_task('${a}').exitcode > 0`],
      [a, ['completed', 'stdout'], `bolt_task('${a}').stdout =~ /x/`],
      [b, ['callerid', 'completed'], `bolt_task('${b}').caller == u`],
      [b, ['completed'], `not bolt_task('${b}').known == false`], // holds outside the run: the complement of the known nodes failing it
    ]);
  });

  it('answers bolt_task terms from the run results; a node that never ran the task matches no field but known == false', async () => {
    const index = await fleetIndex();
    const taskId = 'a'.repeat(32);
    const asked: string[] = [];
    const items = [
      NodeResult.fromPartial({
        host: 'web1.example.com',
        taskId,
        task: 'demo::fail',
        exitcode: 1,
        completed: true,
        startTime: new Date(1_000_000),
        stdout: 'boom',
      }),
      NodeResult.fromPartial({ host: 'web2.example.com', taskId, task: 'demo::fail', exitcode: 0, completed: true, startTime: new Date(1_000_000) }),
      NodeResult.fromPartial({ host: 'db1.example.com', taskId, task: 'demo::fail', exitcode: -1, state: NodeState.NODE_STATE_NO_RESPONSE }),
    ];
    // As the results service answers (lib/bolt-task-results): `where` keeps the nodes that ran and match.
    const runResults = (id: string, _fields: string[], where?: string) => {
      asked.push(where ?? id);
      return Promise.resolve(where ? items.filter((r) => resultMatches(parseResultWhere(where, id), r)) : items);
    };
    const run = async (text: string) => (await discover(index, { compound: [text] }, { runResults })).online;
    assert.deepEqual(await run(`bolt_task('${taskId}').exitcode > 0`), ['web1.example.com']);
    assert.deepEqual(await run(`bolt_task('${taskId}').exitcode == 0 or bolt_task('${taskId}').stdout =~ /BOOM/`), ['web1.example.com', 'web2.example.com']);
    assert.deepEqual(await run(`bolt_task('${taskId}').known == false`), ['db1.example.com', 'win1']);
    assert.deepEqual(await run(`not bolt_task('${taskId}').completed == true and role::web`), ['win1']);
    assert.deepEqual(await run(`bolt_task('${taskId}').exitcode > 0 and bolt_task('${taskId}').start_time >= 1000`), ['web1.example.com']);
    const term = (t: string) => `bolt_task('${taskId}').${t}`;
    assert.deepEqual(
      asked,
      [
        term('exitcode > 0'),
        term('exitcode == 0'),
        term('stdout =~ /BOOM/'),
        `not ${term('known == false')}`,
        term('completed == true'),
        term('exitcode > 0'),
        term('start_time >= 1000'),
      ],
      'the matches of each term; for one that nodes outside the run satisfy, the known nodes failing it',
    );
    await assert.rejects(discover(index, { compound: [`bolt_task('${taskId}').exitcode > 0`] }), InvalidArgumentError);
  });
});
