import Redis from 'ioredis';

/** A slot moved by `moveSlot`: from and to which node (client ports), and how many keys went. */
export interface SlotMove {
  from: number;
  to: number;
  keys: number;
}

/**
 * Moves hash slot `slot` of the local Redis Cluster on `ports` from the master serving it to
 * another, as `redis-cli --cluster reshard` does, one key at a time: IMPORTING on the target,
 * MIGRATING on the source, MIGRATE of each key, then SETSLOT NODE on every node. `between` runs
 * after each key moved (while the slot's keys are split between the two nodes), and the next key
 * moves once it resolved.
 */
export async function moveSlot(ports: number[], slot: number, between: () => Promise<void> = async () => {}): Promise<SlotMove> {
  const nodes = ports.map((port) => new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 }));
  try {
    const ids = await Promise.all(nodes.map((n) => n.cluster('MYID')));
    const ranges = await nodes[0].cluster('SLOTS');
    const owner = ranges.find(([start, end]) => slot >= start && slot <= end)?.[2][2];
    const from = ids.indexOf(owner ?? '');
    if (from < 0) throw new Error(`slot ${slot} is served by no node of ${ports.join(', ')}`);
    const to = (from + 1) % nodes.length;
    await nodes[to].cluster('SETSLOT', slot, 'IMPORTING', ids[from]);
    await nodes[from].cluster('SETSLOT', slot, 'MIGRATING', ids[to]);
    let moved = 0;
    for (;;) {
      const keys = await nodes[from].cluster('GETKEYSINSLOT', slot, 1);
      if (keys.length === 0) break;
      await nodes[from].migrate('127.0.0.1', ports[to], '', 0, 10_000, 'KEYS', ...keys);
      moved += keys.length;
      await between();
    }
    // The target first, so that the source's redirection points to a node that accepts the slot.
    await nodes[to].cluster('SETSLOT', slot, 'NODE', ids[to]);
    await nodes[from].cluster('SETSLOT', slot, 'NODE', ids[to]);
    await Promise.all(nodes.filter((_, i) => i !== to && i !== from).map((n) => n.cluster('SETSLOT', slot, 'NODE', ids[to])));
    return { from: ports[from], to: ports[to], keys: moved };
  } finally {
    for (const n of nodes) n.disconnect();
  }
}
