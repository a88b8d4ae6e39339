/**
 * The supervisor's control protocol, modelled on QEMU's QMP: one JSON object per line. On
 * connecting, the server sends a greeting ({"QMP": {version, capabilities}}); the client must
 * send {"execute": "qmp_capabilities"} before any other command. A command is
 * {"execute": NAME, "arguments": {...}, "id": ANY}; its answer {"return": ..., "id"} or
 * {"error": {"class", "desc"}, "id"}. The server also sends events
 * ({"event": "STOP", "data": {...}, "timestamp": {seconds, microseconds}}) as QEMU does.
 *
 * Commands (QEMU's names): query-status, stop, cont, system_reset, system_powerdown, quit,
 * query-cpus-fast (and query-cpus), query-memory-size-summary (and query-memory), snapshot-save
 * ({"file": PATH, "x-tskvm-stay-paused"?: true}), query-commands; x-tskvm-query-stats (exits, CPU time, memory touched) is
 * tskvm's own, with QEMU's x- prefix for what is not QEMU's.
 */
import net from 'node:net';

/** The longest line either side accepts; a command is a few hundred bytes. */
export const QMP_LINE_MAX = 1024 * 1024;

export type QmpErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotActive';

export interface QmpCommand {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

export type QmpMessage =
  | { QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] } }
  | { return: unknown; id?: unknown }
  | { error: { class: QmpErrorClass; desc: string }; id?: unknown }
  | { event: string; data?: unknown; timestamp: { seconds: number; microseconds: number } };

/** An error a command answered with. */
export class QmpError extends Error {
  override readonly name = 'QmpError';
  constructor(
    readonly errorClass: QmpErrorClass,
    message: string,
  ) {
    super(message);
  }
}

/** Splits a byte stream into lines, refusing lines longer than `max`. */
export class LineSplitter {
  private pending = '';
  constructor(private readonly max = QMP_LINE_MAX) {}

  push(chunk: string): string[] {
    this.pending += chunk;
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    if (this.pending.length > this.max) throw new Error(`a line longer than ${this.max} bytes`);
    return lines.map((line) => line.replace(/\r$/, '')).filter((line) => line.trim() !== '');
  }
}

export function eventMessage(event: string, data?: unknown, now = Date.now()): QmpMessage {
  const MS_PER_S = 1000;
  const US_PER_MS = 1000;
  return {
    event,
    ...(data === undefined ? {} : { data }),
    timestamp: { seconds: Math.floor(now / MS_PER_S), microseconds: (now % MS_PER_S) * US_PER_MS },
  };
}

/** A QMP client over a Unix socket: connect, negotiate, execute commands one after another. */
export class QmpClient {
  private readonly lines = new LineSplitter();
  private readonly waiting: { resolve: (m: QmpMessage) => void; reject: (e: Error) => void }[] = [];
  private readonly queued: QmpMessage[] = [];
  private failure: Error | undefined;
  readonly events: QmpMessage[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      try {
        for (const line of this.lines.push(chunk)) this.deliver(JSON.parse(line) as QmpMessage);
      } catch (err) {
        this.fail(err as Error);
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('the supervisor closed the control connection')));
  }

  /** Connects to `socketPath`, reads the greeting and enters command mode. */
  static async connect(socketPath: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<QmpClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(socketPath);
      const timer = setTimeout(() => {
        s.destroy();
        reject(Object.assign(new Error(`no answer on ${socketPath} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const client = new QmpClient(socket);
    const greeting = await client.next();
    if (!('QMP' in greeting)) throw new Error(`${socketPath} did not greet as QMP: ${JSON.stringify(greeting)}`);
    await client.execute('qmp_capabilities');
    return client;
  }

  /** Runs a command and returns its `return` value; an error answer throws a QmpError. */
  async execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const message: QmpCommand = { execute: command, ...(args ? { arguments: args } : {}) };
    this.socket.write(`${JSON.stringify(message)}\n`);
    for (;;) {
      const answer = await this.next();
      if ('event' in answer) {
        this.events.push(answer);
        continue;
      }
      if ('error' in answer) throw new QmpError(answer.error.class, answer.error.desc);
      if ('return' in answer) return answer.return as T;
    }
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private next(): Promise<QmpMessage> {
    const queued = this.queued.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private deliver(message: QmpMessage): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter.resolve(message);
    else this.queued.push(message);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const waiter of this.waiting.splice(0)) waiter.reject(this.failure);
  }
}

const CONNECT_TIMEOUT_MS = 10_000;

/** Runs one command on a domain's control socket and closes the connection. */
export async function qmpExecute<T = unknown>(socketPath: string, command: string, args?: Record<string, unknown>): Promise<T> {
  const client = await QmpClient.connect(socketPath);
  try {
    return await client.execute<T>(command, args);
  } finally {
    client.close();
  }
}
