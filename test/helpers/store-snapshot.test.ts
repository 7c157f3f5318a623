import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniquePrefix, useRedisServer } from './redis';
import { diffSnapshots, snapshotStore } from './store-snapshot';

const redis = useRedisServer();

describe('store snapshots', () => {
  it('see no difference when nothing changed, and name every changed key and file otherwise', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-snapshot-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'spool'));
    writeFileSync(join(dir, 'spool', 'a'), 'one');
    const p = uniquePrefix();
    const c = redis.client();
    await c.hset(`${p}:node:n1`, 'online', '1', 'last_seen', '1');
    await c.zadd(`${p}:nodes`, 1, 'n1');
    await c.sadd(`${p}:set`, 'x');
    await c.xadd(`${p}:events`, '*', 'e', '1');
    const volatile = [
      { key: new RegExp(`^${p}:node:`), hashFields: ['last_seen'] },
      { key: new RegExp(`^${p}:nodes$`), zsetScores: true },
    ];
    const take = () => snapshotStore({ redisUrl: redis.url, dirs: [dir], volatile });

    const before = await take();
    assert.deepEqual(diffSnapshots(before, await take()), []);

    await c.hset(`${p}:node:n1`, 'last_seen', '2');
    await c.zadd(`${p}:nodes`, 2, 'n1');
    assert.deepEqual(diffSnapshots(before, await take()), [], 'the volatile parts are left out');

    await c.hset(`${p}:node:n1`, 'online', '0');
    await c.sadd(`${p}:set`, 'y');
    await c.set(`${p}:new`, 'v');
    await c.xadd(`${p}:events`, '*', 'e', '2');
    writeFileSync(join(dir, 'spool', 'a'), 'two');
    writeFileSync(join(dir, 'spool', 'b'), '');
    const diff = diffSnapshots(before, await take());
    assert.equal(diff.length, 6, diff.join('\n'));
    assert.match(diff[0], new RegExp(`^redis key ${p}:events \\(stream\\) changed`));
    assert.match(diff[1], new RegExp(`^redis key added: ${p}:new \\(string\\)`));
    assert.match(diff[2], new RegExp(`^redis key ${p}:node:n1 \\(hash\\) changed: .*online=1.* -> .*online=0`));
    assert.match(diff[3], new RegExp(`^redis key ${p}:set \\(set\\) changed: \\["x"\\] -> \\["x","y"\\]`));
    assert.match(diff[4], /^file changed: .*spool\/a \(file, 3 bytes, [0-9a-f]{12}\) -> \(file, 3 bytes, /);
    assert.match(diff[5], /^file added: .*spool\/b \(file, 0 bytes\)/);
  });
});
