import { ServerInterceptingCall, ServerListenerBuilder, ResponderBuilder, type ServerInterceptor, type ServiceDefinition } from '@grpc/grpc-js';
import { BatonError, PermissionDeniedError, UnauthenticatedError, toServiceError } from './errors';
import type { Logger } from './logger';
import { IDENTITY_PATTERN } from './names';
import { quote } from './quote';
import { describePeer, peerOf, type Peer } from './peer-identity';
import { CERT_ROLES, type CertRole } from './pki';

/**
 * Which certificate roles may call which methods, declared by each service
 * next to its implementation and enforced for every call of a TLS server by one grpc-js server
 * interceptor, before the handler runs: a refused call has no side effect at all.
 */

/** The roles that may call a service's methods: `default` for every method, `methods` overriding it by proto method name. */
export interface MethodRoles {
  default: readonly CertRole[];
  /** By proto method name as in the path (`RecordNodeResults`). */
  methods?: Readonly<Record<string, readonly CertRole[]>>;
}

/** Every Baton role: any certificate the CA issued with a role may call. */
export const ANY_ROLE: readonly CertRole[] = CERT_ROLES;

/** A service as the interceptor sees it: its full proto name, its definition and its roles (ANY_ROLE when undefined). */
export interface RoleScope {
  name: string;
  definition: ServiceDefinition;
  roles?: MethodRoles;
}

const ARTICLE: Record<CertRole, string> = { agent: 'an', service: 'a', operator: 'an' };

/** `an operator or service certificate`. */
function describeRoles(roles: readonly CertRole[]): string {
  const words = roles.length <= 1 ? roles.join('') : `${roles.slice(0, -1).join(', ')} or ${roles[roles.length - 1]}`;
  return `${roles.length === 0 ? 'a' : ARTICLE[roles[0]]} ${words} certificate`;
}

/**
 * The roles allowed for each method path (`/baton.v1.ResultsService/CreateRun`) of the given
 * services. Throws when `methods` names a method the service does not have, so a typo can
 * never leave a method on its default by accident.
 */
export function allowedRolesByPath(services: readonly RoleScope[]): Map<string, readonly CertRole[]> {
  const byPath = new Map<string, readonly CertRole[]>();
  for (const s of services) {
    const roles = s.roles ?? { default: ANY_ROLE };
    const paths = Object.values(s.definition).map((m) => m.path);
    for (const method of Object.keys(roles.methods ?? {})) {
      if (!paths.includes(`/${s.name}/${method}`)) throw new Error(`roles of ${s.name} name method '${method}', which it does not have`);
    }
    for (const path of paths) byPath.set(path, roles.methods?.[path.slice(path.lastIndexOf('/') + 1)] ?? roles.default);
  }
  return byPath;
}

/**
 * Why `peer` may not call `path` (which `allowed` roles may call; undefined for methods open
 * to any verified certificate, such as health and reflection), or undefined when it may.
 */
export function refusal(peer: Peer | undefined, path: string, allowed: readonly CertRole[] | undefined): BatonError | undefined {
  const method = path.replace(/^\//, '');
  if (!peer)
    return new UnauthenticatedError(`no client certificate; ${method} needs a certificate signed by the Baton CA (tls-cert, tls-key)`, 'NO_CLIENT_CERTIFICATE');
  if (allowed === undefined) return undefined;
  if (peer.name === '' || !IDENTITY_PATTERN.test(peer.name)) {
    return new UnauthenticatedError(
      `${peer.name === '' ? describePeer(peer) : `certificate ${quote(peer.name)}`} does not name a Baton identity (expected a CN matching ${IDENTITY_PATTERN.source}); issue it with \`baton pki issue\``,
      'CERTIFICATE_WITHOUT_NAME',
    );
  }
  if (peer.role === undefined) {
    return new UnauthenticatedError(
      `${describePeer(peer)} carries no Baton role (OU=baton-agent, baton-service or baton-operator); issue it with \`baton pki issue\``,
      'CERTIFICATE_WITHOUT_ROLE',
    );
  }
  if (!allowed.includes(peer.role)) {
    return new PermissionDeniedError(`${describePeer(peer)} is ${describeRoles([peer.role])}; ${method} needs ${describeRoles(allowed)}`, 'ROLE_NOT_ALLOWED', {
      role: peer.role,
      method,
    });
  }
  return undefined;
}

/**
 * A server interceptor refusing every call whose certificate may not call its method: the
 * call ends with UNAUTHENTICATED or PERMISSION_DENIED as soon as its metadata arrives, the
 * handler is never started, and one warn line names the certificate and the method. Methods
 * not in `allowed` (health, reflection) need only a certificate the TLS handshake verified.
 */
export function roleInterceptor(allowed: ReadonlyMap<string, readonly CertRole[]>, log: Logger): ServerInterceptor {
  return (descriptor, call) => {
    const peer = peerOf(call);
    const refused = refusal(peer, descriptor.path, allowed.get(descriptor.path));
    if (!refused) return new ServerInterceptingCall(call);
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata(() => {
        log.warn(
          { method: descriptor.path, peer: peer?.name, role: peer?.role, peerAddress: call.getPeer(), reason: refused.reason },
          `call refused: ${refused.message}`,
        );
        call.sendStatus(toServiceError(refused, log) as Parameters<typeof call.sendStatus>[0]);
      })
      // Nothing the refused caller sends goes further.
      .withOnReceiveMessage(() => undefined)
      .withOnReceiveHalfClose(() => undefined)
      .build();
    return new ServerInterceptingCall(call, new ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
