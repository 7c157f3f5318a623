import { splitHostPort, type HostPort } from './host-port';

/**
 * The one rule for a `redis-url` setting. One server: `redis://[user:password@]host:port[/db]`
 * (`rediss://` for TLS). A Redis Cluster: `redis-cluster://[user:password@]host:port,host:port...`
 * (`rediss-cluster://` for TLS) naming some of its nodes (seeds; the client learns the rest from
 * them), or the same seeds as comma-separated `redis://` URLs. A cluster has only database 0.
 */

/** What a redis-url value must look like, as the configuration's error messages say it. */
export const REDIS_URL_EXPECTED =
  'expected redis://host:port[/db] (rediss:// for TLS) for one server, or for a Redis Cluster redis-cluster://host:port,host:port (rediss-cluster:// for TLS) or comma-separated redis:// URLs of its nodes';

/** Where a redis-url points: one server (its URL, as ioredis takes it) or a cluster's seed nodes. */
export type RedisTarget = { kind: 'server'; url: string } | { kind: 'cluster'; seeds: HostPort[]; username?: string; password?: string; tls: boolean };

const SERVER_SCHEMES = new Map([
  ['redis:', false],
  ['rediss:', true],
]);
const CLUSTER_SCHEMES = new Map([
  ['redis-cluster:', false],
  ['rediss-cluster:', true],
]);

/** One `redis://` URL split, or undefined when it is not one. */
function splitServerUrl(value: string): { seed: HostPort; tls: boolean; username: string; password: string; db: string } | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const tls = SERVER_SCHEMES.get(url.protocol);
  if (tls === undefined || !url.hostname || url.search || url.hash) return undefined;
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    seed: { host, port: url.port ? Number(url.port) : 6379 },
    tls,
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    db,
  };
}

/** Splits a redis-url value; undefined when it follows none of the forms of REDIS_URL_EXPECTED. */
export function parseRedisUrl(value: string): RedisTarget | undefined {
  const scheme = /^([a-z-]+:)\/\//.exec(value)?.[1];
  const clusterTls = scheme === undefined ? undefined : CLUSTER_SCHEMES.get(scheme);
  if (clusterTls !== undefined) {
    const rest = value.slice(scheme!.length + 2);
    const at = rest.lastIndexOf('@');
    const auth = at < 0 ? '' : rest.slice(0, at);
    const seeds = (at < 0 ? rest : rest.slice(at + 1)).split(',').map((s) => splitHostPort(s.trim()));
    if (seeds.length === 0 || seeds.some((s) => s === undefined)) return undefined;
    const colon = auth.indexOf(':');
    const username = colon < 0 ? auth : auth.slice(0, colon);
    const password = colon < 0 ? '' : auth.slice(colon + 1);
    return {
      kind: 'cluster',
      seeds: seeds as HostPort[],
      username: decodeURIComponent(username) || undefined,
      password: decodeURIComponent(password) || undefined,
      tls: clusterTls,
    };
  }
  const parts = value.split(',').map((s) => s.trim());
  const servers = parts.map(splitServerUrl);
  if (servers.some((s) => s === undefined)) return undefined;
  if (servers.length === 1) return { kind: 'server', url: value };
  const first = servers[0]!;
  // Every node of one cluster is reached the same way: one scheme and one set of credentials.
  if (servers.some((s) => s!.tls !== first.tls || s!.username !== first.username || s!.password !== first.password || (s!.db !== '' && s!.db !== '0')))
    return undefined;
  return { kind: 'cluster', seeds: servers.map((s) => s!.seed), username: first.username || undefined, password: first.password || undefined, tls: first.tls };
}

/** Whether `value` is a redis-url of any form. */
export function isRedisUrl(value: string): boolean {
  return parseRedisUrl(value) !== undefined;
}
