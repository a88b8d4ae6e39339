/**
 * The supervisor: one detached process per running domain, as QEMU is one process per libvirt
 * domain. It owns the VM (through the library's startGuest), outlives the command that started
 * it, and answers on two Unix sockets in run/NAME/ (mode 0700, the sockets 0600):
 *
 *   control.sock  QMP-style commands (see qmp.ts): pause, resume, reset, power-down, quit, queries
 *   console.sock  the console: a JSON header line ({"force": bool}), an answer line, then raw bytes
 *
 * When the guest's run ends it applies the domain's lifecycle policy: a power-off (debug-exit,
 * halt, system_powerdown) follows <on_poweroff>, a reset <on_reboot>, a crash <on_crash>:
 * destroy ends the supervisor, restart boots the guest again, preserve keeps the supervisor (and
 * the end's details) until `destroy`. Its record (supervisor.json) is rewritten on every change,
 * so `list` reads the state without talking to it; the record also carries its pid and start
 * time, so a supervisor that died is seen as crashed.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import net from 'node:net';
import type { ComPortName } from '../board/pc-board.js';
import { UsageError } from '../errors.js';
import { startGuest, type GuestRun, type RunGuestOptions, type RunResult, type SerialEndpoint } from '../machine/run.js';
import { releaseIdleResources } from '../machine/vm.js';
import type { ExitCounts } from '../vcpu/exit-loop.js';
import { ConsoleLog } from './console-log.js';
import type { DomainStatsJson, SupervisorArgs } from './protocol.js';
import { eventMessage, LineSplitter, type QmpCommand, type QmpErrorClass, type QmpMessage } from './qmp.js';
import {
  prepareRuntimeDir,
  processStartTime,
  runtimePaths,
  writeLastRun,
  writeRecord,
  type DomainState,
  type RuntimePaths,
  type SupervisorRecord,
} from './runtime.js';
import { openSerialPorts, StreamPort, type HostSerialPort } from './serial-ports.js';
import { DomainStore } from './store.js';
import { type CrashAction, type DomainConfig, type LifecycleAction } from './xml.js';

const BOOT_SECTOR_SIZE = 512;
const BOOT_SIGNATURE = [0x55, 0xaa] as const;
/** A guest that ends sooner than this after starting is restarted with a growing delay (no busy loop). */
const QUICK_END_MS = 1000;
const RESTART_DELAY_MIN_MS = 100;
const RESTART_DELAY_MAX_MS = 5000;
const COM_NAMES: readonly ComPortName[] = ['COM1', 'COM2', 'COM3', 'COM4'];

type EndKind = 'poweroff' | 'reboot' | 'crash';
type Request = { kind: 'quit'; reason: string } | { kind: 'reset' } | { kind: 'powerdown' };

/** QMP's RunState names for a domain state. */
function qmpStatus(state: DomainState, reason: string): string {
  switch (state) {
    case 'running':
      return 'running';
    case 'paused':
      return reason === 'shutting down' ? 'shutdown' : 'paused';
    case 'in shutdown':
    case 'shut off':
      return 'shutdown';
    case 'crashed':
      return 'guest-panicked';
  }
}

export class Supervisor {
  private run: GuestRun | undefined;
  private state: DomainState = 'running';
  private reason = 'booted';
  private request: Request | undefined;
  private readonly controlClients = new Set<net.Socket>();
  private readonly servers: net.Server[] = [];
  private ports: HostSerialPort[] = [];
  private consolePort: StreamPort | undefined;
  private consoleLog: ConsoleLog | undefined;
  private readonly totals: ExitCounts = {
    io: 0,
    mmio: 0,
    hlt: 0,
    shutdown: 0,
    intr: 0,
    internalError: 0,
    failEntry: 0,
    debug: 0,
    unknown: 0,
  };
  private runs = 0;
  private lastResult: RunResult | undefined;
  private recordWrites: Promise<void> = Promise.resolve();
  private readonly record: SupervisorRecord;
  private wake: (() => void) | undefined;
  private readonly startedAt = new Date();

  private constructor(
    private readonly args: SupervisorArgs,
    private readonly config: DomainConfig,
    private readonly paths: RuntimePaths,
  ) {
    this.record = {
      pid: process.pid,
      startTime: processStartTime(process.pid) ?? '',
      id: args.id,
      name: config.name,
      uuid: config.uuid,
      state: 'running',
      reason: args.restore ? 'restored' : 'booted',
      startedAt: this.startedAt.toISOString(),
      vcpus: config.vcpusCurrent,
      memoryKiB: config.memoryKiB,
    };
  }

  /**
   * Sets the domain up and boots it; resolves once the guest runs (then `done` says when the
   * supervisor has finished). Failures before that are thrown, with nothing left behind.
   */
  static async start(args: SupervisorArgs): Promise<{ supervisor: Supervisor; done: Promise<void> }> {
    const store = await DomainStore.open({ home: args.home });
    const { domain } = await store.get(args.name);
    const paths = runtimePaths(store, args.name);
    await prepareRuntimeDir(paths);
    const supervisor = new Supervisor(args, domain.config, paths);
    try {
      await supervisor.setUp();
      await supervisor.boot(args.restore);
    } catch (err) {
      await supervisor.tearDown();
      throw err;
    }
    return { supervisor, done: supervisor.loop() };
  }

  /** Ends the domain as `destroy` does (SIGTERM comes here too). */
  destroy(reason: string): void {
    this.request = { kind: 'quit', reason };
    this.endRunOrWake();
  }

  private async setUp(): Promise<void> {
    await Promise.all([this.paths.control, this.paths.console].map((file) => rm(file, { force: true })));
    this.ports = await openSerialPorts(this.config.serials);
    const consolePortNumber = this.config.consolePort ?? this.config.serials[0]?.port;
    const consoleHost = this.ports.find((p) => p.port === consolePortNumber);
    if (consoleHost instanceof StreamPort && this.config.serials.find((s) => s.port === consolePortNumber)?.backend.type === 'pty')
      this.consolePort = consoleHost;
    if (consoleHost instanceof StreamPort) {
      this.consoleLog = new ConsoleLog(this.paths.consoleLog, this.config.tskvm.consoleLog);
      const log = this.consoleLog;
      consoleHost.tap = (chunk) => log.write(chunk);
    }
    this.servers.push(await listen(this.paths.control, (socket) => this.serveControl(socket)));
    this.servers.push(await listen(this.paths.console, (socket) => this.serveConsole(socket)));
  }

  /** Starts a guest run (the first, or after a reset or restart). */
  private async boot(restore?: string): Promise<void> {
    const run = await startGuest(restore === undefined ? await this.guestOptions() : this.restoreOptions(restore));
    this.run = run;
    await this.setState('running', restore !== undefined ? 'restored' : 'booted');
  }

  /** This run's ends of the serial ports (COM1 present even when unconnected, so nothing else claims it). */
  private serialPorts(): Partial<Record<ComPortName, SerialEndpoint>> {
    const serialPorts: Partial<Record<ComPortName, SerialEndpoint>> = { COM1: {} };
    for (const port of this.ports) serialPorts[COM_NAMES[port.port]!] = port.endpoint();
    return serialPorts;
  }

  /**
   * A restore: the machine (RAM, vCPUs, devices) and the guest come from the snapshot, so only
   * this run's endpoints and host-side memory options are given (startGuest refuses the rest).
   */
  private restoreOptions(restore: string): RunGuestOptions {
    const options = {
      restore,
      ksm: this.config.tskvm.ksm,
      hugepages: this.config.hugepages,
      collectSerial: false,
      serialPorts: this.serialPorts(),
    };
    return options as RunGuestOptions;
  }

  private async guestOptions(): Promise<RunGuestOptions> {
    const c = this.config;
    const serialPorts = this.serialPorts();
    const image = c.os.kernel ?? bootSectorFromDisk(c);
    return {
      image,
      memory: c.memoryKiB * 1024,
      cpus: c.vcpusCurrent,
      format: c.os.kernel !== undefined ? c.tskvm.format : 'bootsector',
      ...(c.os.cmdline !== undefined ? { cmdline: c.os.cmdline } : {}),
      ...(c.os.initrd !== undefined ? { modules: [c.os.initrd] } : {}),
      longMode: c.tskvm.longMode,
      ksm: c.tskvm.ksm,
      hugepages: c.hugepages,
      memPrealloc: c.memPrealloc,
      collectSerial: false,
      serialPorts,
    };
  }

  /** Runs guest after guest as the lifecycle policies say, until the domain ends. */
  private async loop(): Promise<void> {
    let quickEnds = 0;
    for (;;) {
      const run = this.run;
      let ended: { kind: EndKind; result: RunResult } | { kind: 'quit'; reason: string } | { kind: 'reset' };
      if (run) {
        const started = Date.now();
        const result = await run.result.catch((err: unknown) => crashResult(err));
        this.run = undefined;
        this.lastResult = result;
        this.runs++;
        for (const key of Object.keys(this.totals) as (keyof ExitCounts)[]) this.totals[key] += result.exits[key];
        quickEnds = Date.now() - started < QUICK_END_MS ? quickEnds + 1 : 0;
        ended = this.classify(result);
      } else {
        // Preserved after the guest's end: wait for destroy or reset.
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        const request = this.takeRequest();
        if (!request) continue;
        ended = request.kind === 'quit' ? request : { kind: 'reset' };
      }

      if (ended.kind === 'quit') return this.finish('shut off', ended.reason);
      if (ended.kind !== 'reset') {
        const { kind, result } = ended;
        this.broadcast(
          kind === 'crash'
            ? eventMessage('GUEST_PANICKED', { action: 'pause' })
            : kind === 'reboot'
              ? eventMessage('RESET', { guest: true, reason: 'guest-reset' })
              : eventMessage('SHUTDOWN', { guest: true, reason: 'guest-shutdown' }),
        );
        if (kind === 'crash') log(`guest crashed: ${result.crash?.description ?? 'unknown'}\n${result.crash?.state ?? ''}`);
        const action: LifecycleAction = plainAction(
          kind === 'poweroff' ? this.config.onPoweroff : kind === 'reboot' ? this.config.onReboot : this.config.onCrash,
        );
        if (action === 'destroy') return this.finish('shut off', kind === 'crash' ? 'crashed' : 'shutdown');
        if (action === 'preserve') {
          await this.setState(kind === 'crash' ? 'crashed' : 'paused', kind === 'crash' ? 'panicked' : 'shutting down');
          continue;
        }
      } else {
        this.broadcast(eventMessage('RESET', { guest: false, reason: 'host-qmp-system-reset' }));
      }
      if (quickEnds > 0) await delay(Math.min(RESTART_DELAY_MIN_MS * 2 ** (quickEnds - 1), RESTART_DELAY_MAX_MS));
      if (this.request?.kind === 'quit') return this.finish('shut off', this.request.reason);
      try {
        await this.boot();
      } catch (err) {
        log(`restart failed: ${(err as Error).message}`);
        return this.finish('shut off', 'failed');
      }
    }
  }

  private classify(result: RunResult): { kind: EndKind; result: RunResult } | { kind: 'quit'; reason: string } | { kind: 'reset' } {
    const request = this.takeRequest();
    if (request?.kind === 'quit') return request;
    if (request?.kind === 'reset') return { kind: 'reset' };
    switch (result.reason) {
      case 'crash':
        return { kind: 'crash', result };
      case 'reset':
        return { kind: 'reboot', result };
      case 'saved':
        // A run started with startGuest's save option ends once saved; the domain has ended as `save` ends it.
        return { kind: 'quit', reason: 'saved' };
      case 'debug-exit':
      case 'halt':
      case 'poweroff':
      case 'timeout':
      case 'stopped':
        // 'stopped' is a system_powerdown: there is no ACPI to tell the guest, so its run ends here.
        return { kind: 'poweroff', result };
    }
  }

  private takeRequest(): Request | undefined {
    const request = this.request;
    this.request = undefined;
    return request;
  }

  private async setState(state: DomainState, reason: string): Promise<void> {
    log(`state: ${state} (${reason})`);
    this.state = state;
    this.reason = reason;
    this.record.state = state;
    this.record.reason = reason;
    const snapshot = { ...this.record };
    this.recordWrites = this.recordWrites
      .then(() => writeRecord(this.paths, snapshot))
      .catch((err: unknown) => log(`cannot write ${this.paths.record}: ${(err as Error).message}`));
    await this.recordWrites;
  }

  /** Ends the domain: last.json says how, the sockets and record go, the process exits. */
  private async finish(state: DomainState, reason: string): Promise<void> {
    const r = this.lastResult;
    await writeLastRun(this.paths, {
      reason,
      state,
      ...(r && r.reason === 'debug-exit' ? { exitCode: r.exitCode } : {}),
      ...(r?.crash ? { crash: r.crash.description } : {}),
      endedAt: new Date().toISOString(),
    }).catch(() => {});
    this.broadcast(eventMessage('SHUTDOWN', { guest: false, reason: reason === 'destroyed' ? 'host-qmp-quit' : reason }));
    await this.tearDown();
  }

  private async tearDown(): Promise<void> {
    this.run?.stop();
    await this.run?.result.catch(() => undefined);
    await this.recordWrites;
    for (const socket of this.controlClients) socket.end();
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const socket of this.controlClients) socket.destroy();
    await Promise.all(this.ports.map((p) => p.close()));
    this.consoleLog?.close();
    await Promise.all([this.paths.record, this.paths.control, this.paths.console].map((file) => rm(file, { force: true })));
    await releaseIdleResources().catch(() => {});
  }

  private broadcast(message: QmpMessage): void {
    const line = `${JSON.stringify(message)}\n`;
    for (const socket of this.controlClients) if (socket.writable) socket.write(line);
  }

  private serveControl(socket: net.Socket): void {
    const version = { qemu: { major: 0, minor: 1, micro: 0 }, package: 'tskvm' };
    socket.write(`${JSON.stringify({ QMP: { version, capabilities: [] } })}\n`);
    const lines = new LineSplitter();
    let negotiated = false;
    let queue = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('close', () => this.controlClients.delete(socket));
    socket.on('data', (chunk: string) => {
      let received: string[];
      try {
        received = lines.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const line of received) {
        queue = queue.then(async () => {
          let command: QmpCommand;
          try {
            command = JSON.parse(line) as QmpCommand;
            if (typeof command.execute !== 'string') throw new Error('no "execute"');
          } catch {
            send(socket, { error: { class: 'GenericError', desc: 'JSON parse error: send {"execute": "COMMAND", "arguments": {...}}' } });
            return;
          }
          const id = command.id === undefined ? {} : { id: command.id };
          if (!negotiated) {
            if (command.execute === 'qmp_capabilities') {
              negotiated = true;
              this.controlClients.add(socket);
              socket.write(`${JSON.stringify({ return: {}, ...id })}\n`);
            } else {
              send(socket, {
                error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" },
                ...id,
              });
            }
            return;
          }
          try {
            const value = await this.execute(command.execute, command.arguments ?? {});
            if (socket.writable) socket.write(`${JSON.stringify({ return: value, ...id })}\n`);
          } catch (err) {
            const errorClass: QmpErrorClass = err instanceof CommandError ? err.errorClass : 'GenericError';
            if (socket.writable) socket.write(`${JSON.stringify({ error: { class: errorClass, desc: (err as Error).message }, ...id })}\n`);
          }
        });
      }
    });
  }

  private async execute(command: string, args: Record<string, unknown>): Promise<unknown> {
    switch (command) {
      case 'qmp_capabilities':
        return {};
      case 'query-commands':
        return COMMANDS.map((name) => ({ name }));
      case 'query-status':
        return { status: qmpStatus(this.state, this.reason), running: this.state === 'running', singlestep: false };
      case 'stop': {
        const run = this.activeRun('stop');
        if (this.state === 'paused') return {};
        await run.pause();
        await this.setState('paused', 'user');
        this.broadcast(eventMessage('STOP'));
        return {};
      }
      case 'cont': {
        const run = this.activeRun('cont');
        if (this.state === 'running') return {};
        run.resume();
        await this.setState('running', 'unpaused');
        this.broadcast(eventMessage('RESUME'));
        return {};
      }
      case 'system_reset':
        this.request = { kind: 'reset' };
        this.endRunOrWake();
        return {};
      case 'system_powerdown':
        this.broadcast(eventMessage('POWERDOWN'));
        if (!this.run) throw new CommandError('DeviceNotActive', 'the guest is not running');
        this.request = { kind: 'powerdown' };
        await this.setState('in shutdown', 'user');
        this.run.stop();
        return {};
      case 'quit': {
        const reason = typeof args['x-tskvm-reason'] === 'string' ? args['x-tskvm-reason'] : 'destroyed';
        this.request = { kind: 'quit', reason };
        this.endRunOrWake();
        return {};
      }
      case 'query-cpus':
      case 'query-cpus-fast':
        return this.queryCpus();
      case 'query-memory':
      case 'query-memory-size-summary':
        return { 'base-memory': this.config.memoryKiB * 1024, 'plugged-memory': 0 };
      case 'snapshot-save': {
        const file = args.file;
        if (typeof file !== 'string' || !file.startsWith('/'))
          throw new CommandError('GenericError', 'snapshot-save needs {"file": ABSOLUTE_PATH}');
        const run = this.activeRun('snapshot-save');
        // tskvm's own argument: stay paused afterwards (save does, so the guest changes nothing after its snapshot).
        const stayPaused = args['x-tskvm-stay-paused'] === true;
        const wasRunning = this.state === 'running';
        if (wasRunning) await run.pause();
        try {
          await run.snapshot(file);
        } catch (err) {
          if (wasRunning) run.resume(); // nothing was saved: as it was
          throw err;
        }
        if (wasRunning && stayPaused) await this.setState('paused', 'save');
        else if (wasRunning) run.resume();
        return {};
      }
      case 'x-tskvm-query-stats':
        return this.stats();
      default:
        throw new CommandError('CommandNotFound', `The command ${command} has not been found`);
    }
  }

  private activeRun(command: string): GuestRun {
    if (!this.run)
      throw new CommandError(
        'DeviceNotActive',
        `${command}: the guest is not running (it ${this.state === 'crashed' ? 'crashed' : 'ended'} and is preserved: destroy it, ` +
          `or reset it)`,
      );
    return this.run;
  }

  private endRunOrWake(): void {
    if (this.run) this.run.stop();
    else this.wake?.();
  }

  private queryCpus(): unknown[] {
    const cpus: unknown[] = [];
    for (let i = 0; i < this.config.vcpusCurrent; i++) {
      const cpu: Record<string, unknown> = {
        'cpu-index': i,
        'qom-path': `/machine/unattached/device[${i}]`,
        'thread-id': process.pid,
        target: 'x86_64',
        props: { 'socket-id': 0, 'core-id': i, 'thread-id': 0 },
      };
      // The boot vCPU's registers can be read while paused: QEMU's old query-cpus gave its pc.
      if (i === 0 && this.run && this.state === 'paused') cpu.pc = Number(this.run.registers().regs.rip);
      cpus.push(cpu);
    }
    return cpus;
  }

  private stats(): DomainStatsJson {
    const usage = process.cpuUsage();
    const US_TO_NS = 1000;
    return {
      state: this.state,
      reason: this.reason,
      runs: this.runs,
      exitsOfEndedRuns: { ...this.totals },
      cpuTimeNs: (usage.user + usage.system) * US_TO_NS,
      cpuUserNs: usage.user * US_TO_NS,
      cpuSystemNs: usage.system * US_TO_NS,
      memoryBytes: this.config.memoryKiB * 1024,
      ...(this.run ? { memoryTouchedBytes: guestMemoryResident(this.config.memoryKiB * 1024) } : {}),
      vcpus: this.config.vcpusCurrent,
      vcpusMaximum: this.config.vcpus,
      ...(this.lastResult
        ? {
            lastRun: {
              reason: this.lastResult.reason,
              exitCode: this.lastResult.exitCode,
              durationMs: Math.round(this.lastResult.durationMs),
            },
          }
        : {}),
    };
  }

  private serveConsole(socket: net.Socket): void {
    socket.on('error', () => {});
    let header = '';
    const onData = (chunk: Buffer): void => {
      header += chunk.toString('latin1');
      const newline = header.indexOf('\n');
      if (newline < 0) {
        if (header.length > HEADER_MAX) socket.destroy();
        return;
      }
      socket.off('data', onData);
      let force: boolean;
      try {
        force = (JSON.parse(header.slice(0, newline)) as { force?: boolean }).force === true;
      } catch {
        socket.end(`${JSON.stringify({ error: 'the console protocol starts with a JSON line such as {"force": false}' })}\n`);
        return;
      }
      const rest = Buffer.from(header.slice(newline + 1), 'latin1');
      const port = this.consolePort;
      if (!port) {
        socket.end(
          `${JSON.stringify({ error: "the domain has no pty console: give it <serial type='pty'/> (or a <console type='pty'/>)" })}\n`,
        );
        return;
      }
      if (port.attached && !force) {
        socket.end(`${JSON.stringify({ error: 'an active console session exists for this domain: use --force to take it over' })}\n`);
        return;
      }
      socket.write(`${JSON.stringify({ ok: true, port: COM_NAMES[port.port] })}\n`);
      port.attach(socket, true);
      if (rest.length > 0) socket.emit('data', rest);
    };
    socket.on('data', onData);
  }
}

const HEADER_MAX = 4096;
const SOCKET_MODE = 0o600;
const COMMANDS = [
  'qmp_capabilities',
  'query-commands',
  'query-status',
  'stop',
  'cont',
  'system_reset',
  'system_powerdown',
  'quit',
  'query-cpus',
  'query-cpus-fast',
  'query-memory',
  'query-memory-size-summary',
  'snapshot-save',
  'x-tskvm-query-stats',
];

class CommandError extends Error {
  constructor(
    readonly errorClass: QmpErrorClass,
    message: string,
  ) {
    super(message);
  }
}

function plainAction(action: CrashAction): LifecycleAction {
  if (action === 'coredump-destroy') return 'destroy';
  if (action === 'coredump-restart' || action === 'rename-restart') return 'restart';
  return action;
}

function crashResult(err: unknown): RunResult {
  const exits: ExitCounts = { io: 0, mmio: 0, hlt: 0, shutdown: 0, intr: 0, internalError: 0, failEntry: 0, debug: 0, unknown: 0 };
  const description = `the run failed: ${(err as Error)?.message ?? String(err)}`;
  return {
    reason: 'crash',
    exitCode: 0,
    serial: '',
    serialBytes: Buffer.alloc(0),
    durationMs: 0,
    exits,
    crash: { description, state: '' },
    format: 'flat',
    notes: [],
    warnings: [],
  };
}

/** The first bootable disk's boot sector, for a domain without <kernel> (<boot dev='hd'/>, raw images only). */
function bootSectorFromDisk(config: DomainConfig): Uint8Array {
  const bootsHd = config.os.boot.length === 0 || config.os.boot.includes('hd');
  const disk = config.disks.find((d) => d.device === 'disk' && d.file !== undefined);
  if (!bootsHd || !disk || disk.file === undefined) {
    throw new UsageError(
      `${config.name}: element <os>: no <kernel>, and no disk to boot: give <kernel>/path/to/guest</kernel>, ` +
        `or a raw disk whose first sector is a boot sector with <boot dev='hd'/>`,
    );
  }
  if (disk.format !== undefined && disk.format !== 'raw') {
    throw new UsageError(
      `element <${disk.where}/driver>, attribute type='${disk.format}': tskvm boots raw disks only: ` +
        `convert it (qemu-img convert -O raw) or give a <kernel>`,
    );
  }
  const sector = new Uint8Array(BOOT_SECTOR_SIZE);
  const fd = openSync(disk.file, 'r');
  try {
    readSync(fd, sector, 0, BOOT_SECTOR_SIZE, 0);
  } finally {
    closeSync(fd);
  }
  if (sector[BOOT_SECTOR_SIZE - 2] !== BOOT_SIGNATURE[0] || sector[BOOT_SECTOR_SIZE - 1] !== BOOT_SIGNATURE[1]) {
    throw new UsageError(
      `element <${disk.where}/source>: '${disk.file}' has no boot sector (its first 512 bytes do not end 0x55 0xAA): ` +
        `give a <kernel> instead`,
    );
  }
  return sector;
}

/**
 * Resident bytes of the guest's RAM mapping, from /proc/self/smaps: the anonymous mapping
 * (shared: "/dev/zero (deleted)"; private with KSM/huge pages: unnamed) whose size is the
 * guest's RAM. Pages count once touched, which is what "memory touched" means to a KVM user.
 */
export function guestMemoryResident(memoryBytes: number, smaps = readSmaps()): number | undefined {
  const KIB = 1024;
  let best: number | undefined;
  let size = -1;
  let candidate = false;
  for (const line of smaps.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const name = header[1]!.trim();
      candidate = name === '' || name === '/dev/zero (deleted)' || name.startsWith('/SYSV');
      size = -1;
      continue;
    }
    const field = /^(Size|Rss):\s+(\d+) kB$/.exec(line);
    if (!field || !candidate) continue;
    if (field[1] === 'Size') size = Number(field[2]) * KIB;
    else if (size === memoryBytes) best = Math.max(best ?? 0, Number(field[2]) * KIB);
  }
  return best;
}

function readSmaps(): string {
  try {
    return readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return '';
  }
}

async function listen(socketPath: string, onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  // The umask already made it 0600; say so explicitly rather than rely on it.
  await chmod(socketPath, SOCKET_MODE);
  return server;
}

/** Writes one QMP message as a line, if the client is still there. */
function send(socket: net.Socket, message: QmpMessage): void {
  if (socket.writable) socket.write(`${JSON.stringify(message)}\n`);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}
