import { credentials, makeGenericClientConstructor, type Client } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

/** The status (`SERVING`, `NOT_SERVING`) a grpc.health.v1 Check of `service` at a plaintext `address` answers; rejects with the call's error. */
export async function healthStatus(address: string, service: string): Promise<string> {
  const HealthClient = makeGenericClientConstructor(healthService, 'Health');
  const health = new HealthClient(address, credentials.createInsecure()) as Client & Record<string, (...args: unknown[]) => unknown>;
  try {
    return await new Promise<string>((resolve, reject) => {
      health.check({ service }, (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res.status)));
    });
  } finally {
    health.close();
  }
}
