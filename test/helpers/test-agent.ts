import type { ClientDuplexStream, StatusObject } from '@grpc/grpc-js';
import { AgentGatewayServiceClient, Hello, type ConnectRequest, type ConnectResponse } from '../../gen/baton/v1/agent_gateway_service';
import { makeClient } from '../../lib/grpc-client';
import type { TlsFiles } from '../../lib/tls';
import { waitFor } from './wait';

type ResponseCase = NonNullable<ConnectResponse['message']>['$case'];
type ResponseOf<C extends ResponseCase> = Extract<NonNullable<ConnectResponse['message']>, { $case: C }>['value'];

/**
 * A test client speaking the agent protocol over a real Connect stream, for the scheduler's
 * tests: it sends what a test tells it to and records everything the scheduler sends back.
 */
export class TestAgent {
  /** Every message received, in order. */
  readonly received: ConnectResponse[] = [];
  /** The stream's final status once it ended. */
  status: StatusObject | undefined;
  private readonly client: AgentGatewayServiceClient;
  private readonly stream: ClientDuplexStream<ConnectRequest, ConnectResponse>;
  private consumed = 0;

  /** Connects to `address`, with TLS (an agent certificate) when `tls` names one. */
  constructor(address: string, tls: TlsFiles = {}) {
    this.client = makeClient(AgentGatewayServiceClient, address, tls);
    this.stream = this.client.connect();
    this.stream.on('data', (m: ConnectResponse) => this.received.push(m));
    this.stream.on('status', (s: StatusObject) => (this.status = s));
    this.stream.on('error', () => undefined); // the status event carries the outcome
  }

  /** Opens a stream and sends a Hello for `identity`. */
  static async connect(address: string, hello: Partial<Hello> & { identity: string }, tls: TlsFiles = {}): Promise<TestAgent> {
    const agent = new TestAgent(address, tls);
    agent.send({ $case: 'hello', value: Hello.fromPartial(hello) });
    await agent.next('welcome');
    return agent;
  }

  /** Sends one message. */
  send(message: ConnectRequest['message']): void {
    this.stream.write({ traceContext: {}, message });
  }

  /** Waits for the next message of kind `kind`; unread messages of other kinds before it are skipped. */
  async next<C extends ResponseCase>(kind: C, timeoutMs = 5_000): Promise<ResponseOf<C>> {
    const found = await waitFor(`a ${kind} message`, () => this.take(kind), timeoutMs, 10);
    return found.value as ResponseOf<C>;
  }

  private take(kind: ResponseCase): { value: unknown } | undefined {
    for (; this.consumed < this.received.length; this.consumed++) {
      const m = this.received[this.consumed].message;
      if (m?.$case === kind) {
        this.consumed++;
        return { value: m.value };
      }
    }
    if (this.status) throw new Error(`stream ended (${this.status.code} ${this.status.details}) before a ${kind} message`);
    return undefined;
  }

  /** Waits for the next DownloadCommand and answers that every file is cached and verified; returns the command. */
  async acceptDownload(): Promise<ResponseOf<'download'>> {
    const download = await this.next('download');
    this.send({ $case: 'downloadResult', value: { requestId: download.requestId, ok: true, downloaded: 0, error: '' } });
    return download;
  }

  /** Waits until the stream has ended and returns its status. */
  async ended(timeoutMs = 5_000): Promise<StatusObject> {
    return waitFor('the stream to end', () => this.status, timeoutMs, 10);
  }

  /** Half-closes the stream, as an agent that stops does. */
  end(): void {
    this.stream.end();
  }

  /** Closes the client channel. */
  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}
