import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisClient as Redis } from './redis-client';
import { useRedisServer } from '../test/helpers/redis';
import { LuaScript } from './lua-script';

const redisServer = useRedisServer();

describe('LuaScript', () => {
  let redis: Redis;
  before(() => {
    redis = redisServer.client();
  });
  after(async () => {
    await redis.quit();
  });

  it('passes 400,000 arguments (a 100,000-node run) without overflowing the call stack', async () => {
    const script = new LuaScript(
      'count-args',
      `--[[ Purpose: count. KEYS[1] a key. ARGV any. Result: {#KEYS, #ARGV, last ARGV} ]]\nreturn {#KEYS, #ARGV, ARGV[#ARGV]}`,
    );
    const args = Array.from({ length: 400_000 }, (_, i) => `a${i}`);
    assert.deepEqual(await script.run(redis, ['k'], args), [1, 400_000, 'a399999']);
  });

  it('reads a script from <name>.lua in the given directory, and names the file it cannot read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-lua-'));
    try {
      writeFileSync(
        join(dir, 'sum-args-0.lua'),
        `--[[\nPurpose: add.\nARGV[1], ARGV[2]  numbers\nResult: their sum\n]]\nreturn tonumber(ARGV[1]) + tonumber(ARGV[2])\n`,
      );
      const script = LuaScript.fromFile(dir, 'sum-args-0');
      assert.equal(script.name, 'sum-args-0');
      assert.equal(await script.run(redis, [], [2, 3]), 5);
      assert.throws(
        () => LuaScript.fromFile(dir, 'missing-1'),
        (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.message.includes(join(dir, 'missing-1.lua')),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads the script again after SCRIPT FLUSH, and gives bulk replies as Buffers on request', async () => {
    const script = new LuaScript('echo', `--[[ Purpose: echo. KEYS none. ARGV[1] a value. Result: ARGV[1] ]]\nreturn ARGV[1]`);
    assert.equal(await script.run(redis, [], ['x']), 'x');
    await redis.script('FLUSH');
    assert.deepEqual(await script.runBuffer(redis, [], ['\u00ff']), Buffer.from('\u00ff'));
  });
});
