/**
 * Where a running domain's serial ports lead, per libvirt's <serial> types: 'pty' ports are
 * consoles served by the supervisor (`tskvm console` attaches through console.sock), 'tcp' ports
 * a raw TCP stream on loopback (bind: tskvm listens, one client at a time, as QEMU's server
 * socket with wait=off; connect: tskvm connects out), 'file' ports append to a file, 'null'
 * ports go nowhere. A port outlives the guest runs inside one supervisor (a reboot keeps the
 * console attached); each run gets a fresh input stream from it.
 *
 * A reader that does not keep up is dropped rather than allowed to stall the guest: the console
 * is interactive, and a stalled guest is worse than a lost client.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { UsageError } from '../errors.js';
import type { SerialEndpoint } from '../machine/options.js';
import type { SerialConfig } from './xml.js';

/** Output a client may leave unread before it is disconnected. */
export const CLIENT_BACKLOG_LIMIT = 1024 * 1024;

/** One serial port's host side for the supervisor's lifetime. */
export interface HostSerialPort {
  readonly port: number;
  /** A fresh endpoint for a new guest run. */
  endpoint(): SerialEndpoint;
  close(): Promise<void>;
}

/**
 * A byte stream shared by one attached client: guest output goes to it, its input to the guest.
 * Used by pty consoles (the client comes through console.sock) and tcp ports.
 */
export class StreamPort implements HostSerialPort {
  private client: net.Socket | undefined;
  private input: PassThrough | undefined;
  /** Also called with every output chunk (the console log). */
  tap: ((chunk: Buffer) => void) | undefined;

  constructor(readonly port: number) {}

  endpoint(): SerialEndpoint {
    this.input?.end();
    const input = new PassThrough();
    this.input = input;
    return { input, output: (chunk) => this.output(chunk) };
  }

  get attached(): boolean {
    return this.client !== undefined;
  }

  /** Attaches a client; `force` detaches the one attached before (virsh console --force). */
  attach(socket: net.Socket, force: boolean): boolean {
    if (this.client && !force) return false;
    this.client?.destroy();
    this.client = socket;
    socket.on('data', (data: Buffer) => this.input?.write(data));
    const detach = (): void => {
      if (this.client === socket) this.client = undefined;
    };
    socket.on('close', detach);
    socket.on('error', detach);
    return true;
  }

  private output(chunk: Buffer): void {
    this.tap?.(chunk);
    const client = this.client;
    if (!client) return;
    client.write(chunk);
    if (client.writableLength > CLIENT_BACKLOG_LIMIT) client.destroy();
  }

  async close(): Promise<void> {
    this.input?.end();
    this.client?.end();
    this.client?.destroy();
    this.client = undefined;
  }
}

/** A tcp port: a StreamPort fed by a loopback listener or an outgoing connection. */
export class TcpPort extends StreamPort {
  private server: net.Server | undefined;

  static async open(config: SerialConfig & { backend: { type: 'tcp' } }): Promise<TcpPort> {
    const port = new TcpPort(config.port);
    const { mode, host, port: service } = config.backend;
    const where = `${config.where}/source`;
    if (mode === 'bind') {
      const server = net.createServer((socket) => {
        // One client at a time, as QEMU's server socket: a second one is turned away.
        if (!port.attach(socket, false)) socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            err.code === 'EADDRINUSE'
              ? new UsageError(`element <${where}>, attribute service='${service}': ${host}:${service} is in use: choose another port`)
              : err,
          ),
        );
        server.listen(service, host, resolve);
      });
      port.server = server;
    } else {
      const socket = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(service, host);
        s.once('connect', () => resolve(s));
        s.once('error', (err) =>
          reject(
            new UsageError(
              `element <${where}>: cannot connect to ${host}:${service} (${err.message}): start the listener first, or use mode='bind'`,
            ),
          ),
        );
      });
      port.attach(socket, true);
    }
    return port;
  }

  override async close(): Promise<void> {
    await super.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A file port: output appended (append='on') or written from the start of this supervisor. */
export class FilePort implements HostSerialPort {
  private constructor(
    readonly port: number,
    private readonly stream: WriteStream,
  ) {}

  static async open(config: SerialConfig & { backend: { type: 'file' } }): Promise<FilePort> {
    const stream = createWriteStream(config.backend.path, { flags: config.backend.append ? 'a' : 'w' });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', (err) =>
        reject(
          new UsageError(
            `element <${config.where}/source>, attribute path='${config.backend.path}': cannot write it (${err.message}): ` +
              `fix the path or its permissions`,
          ),
        ),
      );
    });
    return new FilePort(config.port, stream);
  }

  endpoint(): SerialEndpoint {
    return {
      output: (chunk) => {
        if (this.stream.write(chunk)) return undefined;
        return new Promise<void>((resolve) => this.stream.once('drain', resolve));
      },
    };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.stream.end(resolve));
  }
}

/** Opens the host side of every serial port a domain has (null ports have none). */
export async function openSerialPorts(serials: readonly SerialConfig[]): Promise<HostSerialPort[]> {
  const ports: HostSerialPort[] = [];
  try {
    for (const serial of serials) {
      const { backend } = serial;
      if (backend.type === 'pty') ports.push(new StreamPort(serial.port));
      else if (backend.type === 'tcp') ports.push(await TcpPort.open({ ...serial, backend }));
      else if (backend.type === 'file') ports.push(await FilePort.open({ ...serial, backend }));
    }
  } catch (err) {
    await Promise.all(ports.map((p) => p.close()));
    throw err;
  }
  return ports;
}
