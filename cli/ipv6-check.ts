import net from 'node:net';

/**
 * Makes `net.isIPv6` answer false at once for text without a colon. Node's check is one very
 * large regular expression that V8 compiles on its first use, a noticeable part of a short
 * command's start-up, and grpc-js asks it of every address it dials (`127.0.0.1`, a host
 * name). Every IPv6 address has a colon, so the answer is the same; an address with one still
 * goes through Node's check. grpc-js reads `net.isIPv6` at each call, so this takes effect for
 * it; `net.isIP` keeps Node's own.
 */
export function shortCutIsIPv6(): void {
  const module = net as { isIPv6: (input: string) => boolean };
  const full = module.isIPv6;
  module.isIPv6 = (input: string) => String(input).includes(':') && full(input);
}
