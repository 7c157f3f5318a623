/**
 * Stops Node's DEP0123 warning ("Setting the TLS ServerName to an IP address is not permitted"),
 * which Node prints as two plain lines on stderr each time a process dials a TLS server by IP
 * address: grpc-js passes the host of `127.0.0.1:7411` as the server name, and Baton's
 * certificates carry the IP addresses they are valid for. Logs stay one JSON object per line and
 * a CLI error stays one line. Every other warning still prints.
 */
export function silenceServernameIpWarning(): void {
  const emitWarning = process.emitWarning.bind(process) as (warning: string | Error, ...rest: unknown[]) => void;
  process.emitWarning = (warning: string | Error, ...rest: unknown[]) => {
    if (rest.some((r) => r === 'DEP0123' || (typeof r === 'object' && r !== null && (r as { code?: unknown }).code === 'DEP0123'))) return;
    emitWarning(warning, ...rest);
  };
}
