/**
 * The one rule for a `host:port` setting (listen addresses, service addresses, health and
 * metrics listeners) and for splitting one: host is a name, an IPv4 address or an IPv6 address
 * in brackets (`[::1]:50051`), port an integer 0-65535. The configuration checks every address
 * key with it (lib/config.ts formats `host-port` and `host-port-list`), and the servers split
 * what they bind with it, so a value the configuration accepts is one they can use.
 */

/** The rule's words for the host and the port. */
const HOST_PORT_RULE = 'the host a name, an IPv4 address or an IPv6 address in brackets ([::1]:50051), the port 0-65535';

/** What a host:port value must look like, as the configuration's error messages say it. */
export const HOST_PORT_EXPECTED = `expected host:port, ${HOST_PORT_RULE}`;

/** Highest TCP port. */
const MAX_PORT = 65535;

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:,[\]/]+)):(\d{1,5})$/;

/** A host:port split: `host` without brackets (as net and http take it), `port` as a number. */
export interface HostPort {
  host: string;
  port: number;
}

/** Splits `host:port` (or `[v6]:port`); undefined when it does not follow the rule. */
export function splitHostPort(value: string): HostPort | undefined {
  const m = HOST_PORT.exec(value);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > MAX_PORT) return undefined;
  return { host: m[1] ?? m[2], port };
}

/** Whether `value` is one host:port. */
export function isHostPort(value: string): boolean {
  return splitHostPort(value) !== undefined;
}

/** `host` and `port` joined again, bracketing an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `value` with its port replaced by `port` (a bound port in place of 0); `value` must follow the rule. */
export function withPort(value: string, port: number): string {
  const split = splitHostPort(value);
  if (!split) throw new Error(`not host:port: ${value}`);
  return joinHostPort(split.host, port);
}

/** Prefix of a gRPC DNS target naming every address a name resolves to. */
const DNS_TARGET = 'dns:///';

/**
 * The addresses of a list setting: host:port values separated by commas, or one
 * `dns:///host:port` target (gRPC resolves it to every address of the name); undefined when
 * any part does not follow the rule.
 */
export function splitHostPortList(value: string): string[] | undefined {
  if (value.startsWith(DNS_TARGET)) return isHostPort(value.slice(DNS_TARGET.length)) ? [value] : undefined;
  const parts = value.split(',').map((a) => a.trim());
  return parts.every(isHostPort) ? parts : undefined;
}

/** What a host:port list value must look like. */
export const HOST_PORT_LIST_EXPECTED = `expected host:port, several separated by commas, or one dns:///host:port; ${HOST_PORT_RULE}`;
