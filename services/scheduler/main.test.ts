import { describe, it } from 'node:test';
import { join } from 'node:path';
import { startChild } from '../../lib/child-process';
import { LISTENING_LINE } from '../../lib/main';
import { expectScriptsLoadedAtStart } from '../../test/helpers/lua-scripts';
import { uniquePrefix } from '../../test/helpers/redis';

const MAIN = join(__dirname, 'main.js');

describe('baton-scheduler process', () => {
  it('loads every one of its Redis scripts when it starts, before any agent or run uses one', async () => {
    // No metadata or results service: loading the scripts needs neither, and no run is started.
    await expectScriptsLoadedAtStart(__dirname, 18, (redisUrl) =>
      startChild(
        process.execPath,
        [
          MAIN,
          '--insecure',
          '--listen',
          '127.0.0.1:0',
          '--log-level',
          'warn',
          '--redis-url',
          redisUrl,
          '--key-prefix',
          uniquePrefix(),
          '--metadata-address',
          '127.0.0.1:1',
          '--results-address',
          '127.0.0.1:1',
        ],
        { ready: LISTENING_LINE },
      ),
    );
  });
});
