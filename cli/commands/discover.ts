import { Command } from 'commander';
import { EXIT } from '../cli-error';
import { addConnectionOptions, Clients, type ConnectionOptions } from '../connection';
import { addFilterOptions, filterFromOptions, type FilterOptions } from '../filter-options';

interface DiscoverOptions extends ConnectionOptions, FilterOptions {
  offline?: boolean;
}

/**
 * `baton discover [filters]`, like `mco find`: the matching online nodes, one
 * identity per line on stdout (pipeable), and on stderr how many more matched but are offline.
 * `--json` prints the nodes with their facts. Exit 3 when no node matched.
 */
export function discoverCommand(done: (code: number) => void): Command {
  const command = new Command('discover')
    .description('list the nodes the filters select, like mco find')
    .option('--offline', 'also list nodes that matched but are offline');
  return addConnectionOptions(addFilterOptions(command), 'print the nodes with their facts as JSON', ['scheduler']).action(async (options: DiscoverOptions) => {
    const filter = filterFromOptions(options);
    const clients = new Clients(options);
    try {
      const response = await clients.call('scheduler', (c) => c.discoverNodes, { filter, includeOffline: options.offline === true });
      if (options.json) {
        const nodes = response.nodes.map((n) => ({
          identity: n.identity,
          online: n.online,
          last_seen: n.lastSeen?.toISOString() ?? null,
          facts: n.facts ?? {},
          classes: n.classes,
          agents: n.agents,
          version: n.version,
        }));
        process.stdout.write(`${JSON.stringify({ nodes, offline_matches: response.offlineMatches }, null, 2)}\n`);
      } else {
        for (const n of response.nodes) process.stdout.write(`${n.identity}${options.offline && !n.online ? ' (offline)' : ''}\n`);
        if (response.nodes.length === 0)
          process.stderr.write(
            `no node matched${response.offlineMatches > 0 ? ` online; ${response.offlineMatches} matched but are offline (--offline lists them)` : ''}\n`,
          );
        else if (response.offlineMatches > 0) process.stderr.write(`${response.offlineMatches} more matched but are offline\n`);
      }
      done(response.nodes.length === 0 ? EXIT.NO_NODES : EXIT.OK);
    } finally {
      clients.close();
    }
  });
}
