/**
 * runGuest/startGuest: one guest, start to end, in stages that do not reach into each other —
 * options validated (options.ts), the guest's files read (guest-files.ts), the machine built
 * (builder.ts), then run here: serial bridges, gdb, timeout and abort wired, the vCPUs started
 * (with a board thread when there are several), and the result shaped (result.ts). Whatever
 * happens, every resource is released.
 */
import { COM_PORTS, type ComPortName } from '../board/pc-board.js';
import { UsageError } from '../errors.js';
import { ksmMergingPages, ksmRunning } from '../host.js';
import { monotonicMs } from '../units.js';
import { SerialBridge, type SerialSink } from '../io/serial-bridge.js';
import { SerialConsole } from '../io/serial-console.js';
import type { KvmRegs, KvmSregs } from '../kvm/structs.js';
import type { BoardThread } from '../board/board-thread.js';
import type { AttachedGdb } from '../gdb/attach.js';
import type { VcpuRunResult } from '../vcpu/exit-loop.js';
import type { VcpuJobDebug } from '../vcpu/thread.js';
import { HALT_POLL_INTERVAL_MS, type Vcpu, type VcpuState } from '../vcpu/vcpu.js';
import { loadMachine, restoredMachine, stageMachine, type Machine, type StagedMachine } from './builder.js';
import { readGuestFiles } from './guest-files.js';
import { validateRunOptions, type MachineConfig, type RunGuestOptions } from './options.js';
import { combineVcpuResults, toRunResult, type RunReason, type RunResult } from './result.js';
import type { SnapshotInfo, SnapshotOptions } from '../snapshot/capture.js';
import { RunSnapshots } from '../snapshot/run-hooks.js';
import type { ScreenCapture } from '../bios/screen.js';
import { bootsThroughBios } from '../bios/boot-choice.js';
import { loadBios } from '../bios/lazy.js';
import type { GuestFiles } from './guest-files.js';

export {
  DEFAULT_MEMORY,
  type RunGuestOptions,
  type SerialEndpoint,
  type ModuleSource,
  type TraceOptions,
  type GdbOptions,
} from './options.js';
export type { RunReason, RunResult } from './result.js';

/**
 * A running guest: pause, resume or stop it whatever it is doing (in KVM_RUN, halted in the
 * kernel, in an exit, still starting), read its registers while paused, and await how the run ended.
 */
export interface GuestRun {
  /** The boot vCPU's state: 'starting', 'running', 'paused' or 'stopped' (the run has ended). */
  readonly state: VcpuState;
  /** Stops every vCPU where it is; resolves once all are paused (or the run has ended). */
  pause(): Promise<void>;
  /** Lets paused vCPUs go on. */
  resume(): void;
  /** Ends the run (reason 'stopped'), paused or not. */
  stop(): void;
  /** The registers of the paused boot vCPU (consistent: nothing runs while it is paused). */
  registers(): { regs: KvmRegs; sregs: KvmSregs };
  /**
   * Pauses the guest and saves it to `path` (src/snapshot/capture.ts); it stays paused unless
   * `options.resume`. `startGuest({ restore: path })` brings it back, here or in another process.
   */
  snapshot(path: string, options?: SnapshotOptions): Promise<SnapshotInfo>;
  /**
   * COM1 as a test drives it: write() types, expect() waits for output (src/io/serial-console.ts).
   * Undefined when COM1 is connected to nothing (serialPorts without COM1).
   */
  readonly console: SerialConsole | undefined;
  /** A console for every connected port. */
  readonly consoles: Partial<Record<ComPortName, SerialConsole>>;
  /** The text screen now, for a guest booted through tskvm's BIOS (undefined otherwise). */
  screen(): ScreenCapture | undefined;
  readonly result: Promise<RunResult>;
}

/** Runs a guest to its end: `(await startGuest(options)).result`. */
export async function runGuest(options: RunGuestOptions): Promise<RunResult> {
  return (await startGuest(options)).result;
}

/** Creates the machine, loads the image and starts the vCPUs; the returned handle controls the run. */
export async function startGuest(options: RunGuestOptions): Promise<GuestRun> {
  const config = validateRunOptions(options);
  const files = config.restore ? undefined : await filesForBuild(config);
  let machine: Machine;
  if (config.restore) machine = await restoredMachine(config, config.restore);
  else {
    const staged = stageMachine(config, files!);
    if (loadsWhileBoardBuilds(config, staged)) return startWhileLoading(config, staged);
    machine = loadMachine(staged);
  }
  let gdb: AttachedGdb | undefined;
  try {
    // The image tells gdb's register layout when options.gdb.arch does not (an ELF64: x86-64).
    // The stub is loaded only for a run that asks for it (as the board thread is, for SMP).
    if (config.gdb) {
      const { startGdb } = await import('../gdb/attach.js');
      gdb = await startGdb(machine.vcpus, machine.vm.memory, { ...config.gdb, image: files?.image?.bytes });
    }
  } catch (err) {
    machine.bios?.close();
    void machine.vm.close();
    throw err;
  }
  const run = new Run(config, machine, gdb);
  const handle = run.handle();
  try {
    await run.ready; // a restored guest's state is loaded before anyone can resume it
  } catch (err) {
    handle.stop();
    await handle.result.catch(() => {});
    throw err;
  }
  return handle;
}

/**
 * One vCPU in a worker thread, no BIOS, no debugger: the worker builds the board (~0.2 ms) while
 * this thread loads the machine, instead of after. The rest start in the order the code reads.
 */
function loadsWhileBoardBuilds(config: MachineConfig, staged: StagedMachine): boolean {
  return config.vcpuThread === 'worker' && staged.machine.vcpus.length === 1 && !staged.throughBios && !config.gdb;
}

/** The run started with its vCPU held, the machine loaded meanwhile, then the vCPU let go. */
async function startWhileLoading(config: MachineConfig, staged: StagedMachine): Promise<GuestRun> {
  const boot = staged.machine.vcpus[0]!;
  boot.holdStart();
  const run = new Run(config, staged.machine, undefined);
  const handle = run.handle();
  try {
    staged.load();
  } catch (err) {
    // The vCPU thread may hold the vCPU's mapping: the run ends (and closes the VM) first.
    handle.stop();
    await handle.result.catch(() => {});
    throw err;
  }
  boot.releaseStart();
  return handle;
}

/** The guest's files; for a run that boots through the BIOS, its modules loaded too. */
async function filesForBuild(config: MachineConfig): Promise<GuestFiles> {
  const files = await readGuestFiles(config);
  if (bootsThroughBios(config.bios, config.format, files.image?.bytes)) await loadBios();
  return files;
}

/** The run of one built machine. */
class Run {
  private stopReason: RunReason | undefined;
  private callbackError: unknown;
  private readonly chunks: Buffer[] = [];
  private readonly bridges: (SerialBridge | null)[];
  private readonly consoles: Partial<Record<ComPortName, SerialConsole>> = {};
  private board: BoardThread | undefined;
  private readonly started = monotonicMs();
  private readonly snapshots: RunSnapshots;
  private failure: unknown;
  /** Settles once the guest may run (a restored one: its saved state loaded). */
  ready: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: MachineConfig,
    private readonly machine: Machine,
    private readonly gdb: AttachedGdb | undefined,
  ) {
    this.snapshots = new RunSnapshots({
      machine,
      save: config.save,
      pause: async () => void (await Promise.all(machine.vcpus.map((vcpu) => vcpu.pause()))),
      resume: () => machine.vcpus.forEach((vcpu) => vcpu.resume()),
      saveDevices: () => (machine.vcpus.length === 1 ? machine.vcpus[0]!.saveDevices() : this.remoteBoard().saveDevices()),
      stop: (reason) => this.stop(reason),
      fail: (err) => {
        this.failure ??= err;
        this.stop('stopped');
      },
    });
    this.bridges = COM_PORTS.map((port) => {
      const endpoint = config.serial[port.name];
      if (!endpoint) return null;
      const output = port.name === 'COM1' ? this.snapshots.watchSerial((chunk) => endpoint.output?.(chunk)) : endpoint.output;
      // Every connected port has a console (expect/write for tests): its input queue carries the
      // caller's input first, then whatever write() types; its output sees every byte.
      const console = new SerialConsole(port.name, endpoint.input);
      this.consoles[port.name] = console;
      const collect = port.name === 'COM1' && config.collectSerial;
      const sink: SerialSink = (chunk) => {
        console.feed(chunk);
        if (collect) this.chunks.push(chunk);
        return output?.(chunk);
      };
      return new SerialBridge(sink, console.inputQueue, {
        onInput: () => this.inputArrived(),
        onSinkError: (err) => this.callbackFailed(err),
      });
    });
  }

  handle(): GuestRun {
    const { vcpus } = this.machine;
    const timer = this.config.timeoutMs === undefined ? undefined : longTimeout(() => this.stop('timeout'), this.config.timeoutMs);
    const signal = this.config.signal;
    const onAbort = (): void => this.stop('stopped');
    signal?.addEventListener('abort', onAbort);
    this.machine.bios?.start(() => this.inputArrived());
    const loadRestore = this.snapshots.start();
    const running = vcpus.length === 1 ? this.runOne() : this.runSmp();
    this.ready = loadRestore();
    this.gdb?.attach(running);
    if (signal?.aborted) onAbort();
    const result = this.finish(running, () => {
      timer?.cancel();
      signal?.removeEventListener('abort', onAbort);
    });
    const boot = vcpus[0]!;
    return {
      get state() {
        return boot.state;
      },
      pause: async () => {
        await Promise.all(vcpus.map((vcpu) => vcpu.pause()));
      },
      resume: () => vcpus.forEach((vcpu) => vcpu.resume()),
      stop: () => this.stop('stopped'),
      registers() {
        if (boot.state !== 'paused') throw new UsageError(`registers can be read only while the guest is paused (it is ${boot.state})`);
        return { regs: boot.getRegs(), sregs: boot.getSregs() };
      },
      console: this.consoles.COM1,
      consoles: this.consoles,
      screen: () => this.machine.bios?.screen(),
      snapshot: (path, options) => this.snapshots.snapshot(path, options),
      result,
    };
  }

  private stop(reason: RunReason): void {
    this.stopReason ??= reason;
    if (this.finishingSerial) this.abandonSerialSoon();
    for (const vcpu of this.machine.vcpus) vcpu.stop();
  }

  /**
   * After a stop (timeout, abort, stop()), output still queued is delivered for up to
   * SERIAL_STOP_GRACE_MS, then dropped: a caller's sink that never settles cannot keep the run,
   * and its VM, alive. A run the guest ended waits for every byte.
   */
  private abandonSerialSoon(): void {
    if (this.abandonTimer !== undefined) return;
    this.abandonTimer = setTimeout(() => {
      for (const bridge of this.bridges) bridge?.abandon();
    }, SERIAL_STOP_GRACE_MS);
  }

  private finishingSerial = false;
  private abandonTimer: ReturnType<typeof setTimeout> | undefined;

  /** The board thread of a multi-vCPU run (there is one while its vCPUs run). */
  private remoteBoard(): BoardThread {
    if (!this.board) throw new UsageError('the guest cannot be saved: its board is not running');
    return this.board;
  }

  /** New serial input: the devices hear of it now, not when the guest next polls them. */
  private inputArrived(): void {
    if (this.machine.vcpus.length === 1) this.machine.vcpus[0]!.pollInput();
    else this.board?.notifyInput();
  }

  /** A caller's serial sink threw: the run ends, and rejects with that error as the cause. */
  private callbackFailed(err: unknown): void {
    this.callbackError ??= err;
    this.stop('stopped');
  }

  private runOne(): Promise<VcpuRunResult> {
    const { vcpus, firmware } = this.machine;
    const debug = debugOptions(this.config);
    if (debug) this.machine.bios?.alignTrace(debug.startNs);
    const snapshot = this.snapshots.boardSpec;
    return vcpus[0]!.run(this.bridges, firmware, {
      debug,
      ...(snapshot ? { snapshot } : {}),
      ...(this.machine.bios ? { bios: this.machine.bios.spec } : {}),
      onPaused: this.gdb ? (why) => this.gdb?.target.onDebugStop(0, why) : undefined,
      thread: this.config.vcpuThread,
    });
  }

  /**
   * Several vCPUs share one board, in a thread of its own. A failure to start it ends the run
   * through the returned promise, so the clean-up (timer, serial, VM) happens either way.
   */
  private async runSmp(): Promise<VcpuRunResult> {
    const { vm, vcpus, firmware } = this.machine;
    const debug = debugOptions(this.config);
    if (debug) this.machine.bios?.alignTrace(debug.startNs);
    const { BoardThread: Thread } = await import('../board/board-thread.js');
    const board = await Thread.start({
      vmFd: vm.fd.fd,
      memoryAddr: vm.memory.hostAddr,
      memorySize: vm.memory.size,
      irqchip: vm.irqchip,
      serial: this.bridges,
      firmware,
      ...(this.machine.bios ? { bios: this.machine.bios.spec } : {}),
      ...(this.snapshots.boardSpec ? { snapshot: this.snapshots.boardSpec } : {}),
      vcpus: vcpus.length,
    });
    this.board = board;
    try {
      const gdb = this.gdb?.target;
      const runs = vcpus.map((vcpu, i) => {
        const run = vcpu.run([], undefined, {
          debug,
          remote: board.remotes[i],
          onPaused: gdb ? (why) => gdb.onDebugStop(i, why) : undefined,
        });
        // gdb: a vCPU whose run ends (an AP halted for good) is a thread gone.
        run.then(
          () => gdb?.onVcpuEnd(i),
          () => gdb?.onVcpuEnd(i),
        );
        return run;
      });
      return await firstEnding(vcpus, runs, () => this.stop('stopped'));
    } finally {
      this.board = undefined;
      await board.stop();
    }
  }

  private async finish(running: Promise<VcpuRunResult>, cleanUp: () => void): Promise<RunResult> {
    let closing: Promise<void> | undefined;
    // Once no capture reads it, the VM goes: the kernel takes 15-25 ms to destroy one with an
    // irqchip, on libuv's pool, and a process that exits next (the CLI) waits for that pool.
    const closeVm = (): Promise<void> => (closing ??= this.snapshots.settled().then(() => void this.machine.vm.close()));
    try {
      let vcpuResult: VcpuRunResult;
      try {
        vcpuResult = await running;
      } finally {
        cleanUp();
        this.snapshots.finish();
        // Without a BIOS (whose screen the result reads from guest RAM) or gdb (which may still
        // read it) nothing reads the VM once its vCPUs have stopped: its teardown overlaps the
        // output's flush instead of following it.
        if (!this.machine.bios && !this.gdb) void closeVm();
        this.finishingSerial = true;
        if (this.stopReason) this.abandonSerialSoon(); // stopped: a stalled sink gets a grace period, not forever
        await Promise.all(this.bridges.map((bridge) => bridge?.finish()));
        clearTimeout(this.abandonTimer);
        const why = this.stopReason ?? 'the guest ended it';
        for (const console of Object.values(this.consoles)) console.close(why);
        await this.machine.bios?.finish();
        await this.gdb?.close();
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.callbackError !== undefined) {
        const message = this.callbackError instanceof Error ? this.callbackError.message : String(this.callbackError);
        throw new UsageError(`a serial output callback failed, so the run was stopped: ${message}`, 'ECALLBACK', {
          cause: this.callbackError,
        });
      }
      const serialBytes = Buffer.concat(this.chunks);
      const { loaded, warnings, bios } = this.machine;
      const base = {
        serial: serialBytes.toString('utf8'),
        serialBytes,
        durationMs: monotonicMs() - this.started,
        format: loaded.format,
        notes: loaded.notes,
        warnings,
        ...(this.config.ksm ? { ksm: { running: ksmRunning(), mergingPages: ksmMergingPages() } } : {}),
        ...(this.snapshots.savedInfo ? { saved: savedSummary(this.snapshots.savedInfo) } : {}),
        ...(bios ? { bios: { screen: bios.screen(), console: bios.consoleText(), calls: bios.counts() } } : {}),
      };
      return toRunResult(vcpuResult, base, this.stopReason);
    } finally {
      await closeVm(); // after any capture still reading the VM; the kernel's teardown finishes in the background
    }
  }
}

/**
 * A multi-vCPU run ends when one vCPU's end is the guest's (debug-exit, reset, crash, a stop):
 * the others are stopped then. A vCPU that halted for good (an AP parked with `cli; hlt`) just
 * drops out; the run ends as a halt once every vCPU has — or once the only ones left are APs
 * still waiting for INIT/SIPI, which nobody is left to send.
 */
function firstEnding(vcpus: readonly Vcpu[], runs: Promise<VcpuRunResult>[], stopAll: () => void): Promise<VcpuRunResult> {
  return new Promise((resolve, reject) => {
    const results: (VcpuRunResult | undefined)[] = [];
    let decided: VcpuRunResult | undefined;
    let left = runs.length;
    let parkedCheck: ReturnType<typeof setInterval> | undefined;
    const decide = (result: VcpuRunResult): void => {
      decided ??= result;
      stopAll();
    };
    runs.forEach((run, i) => {
      run.then(
        (result) => {
          results[i] = result;
          if (result.outcome.reason !== 'halt') {
            // A crash names its vCPU: with several, which one faulted matters.
            const outcome = result.outcome;
            decide(
              outcome.reason === 'crash'
                ? { ...result, outcome: { ...outcome, description: `${outcome.description} on vCPU ${i}` } }
                : result,
            );
          } else {
            parkedCheck ??= setInterval(() => {
              const running = vcpus.filter((_, j) => results[j] === undefined);
              if (running.length > 0 && running.every((vcpu) => vcpu.waitingForSipi)) decide(result);
            }, HALT_POLL_INTERVAL_MS);
          }
          if (--left > 0) return;
          clearInterval(parkedCheck);
          resolve(combineVcpuResults(results as VcpuRunResult[], decided));
        },
        (err: unknown) => {
          clearInterval(parkedCheck);
          stopAll();
          reject(err);
        },
      );
    });
  });
}

function savedSummary(info: SnapshotInfo): NonNullable<RunResult['saved']> {
  return { path: info.path, bytes: info.bytes, pages: info.pages, durationMs: info.durationMs };
}

/** How long a stopped run still waits for its serial sinks to take queued output. */
export const SERIAL_STOP_GRACE_MS = 1000;

/** setTimeout's longest delay (2^31-1 ms); longer timeouts are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timeout of any length (setTimeout alone fires at once past 2^31-1 ms). */
function longTimeout(fire: () => void, ms: number): { cancel(): void } {
  let timer: ReturnType<typeof setTimeout>;
  const due = monotonicMs() + ms;
  const arm = (): void => {
    const left = due - monotonicMs();
    timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fire, Math.max(0, left));
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}

/** The vCPU thread's debugging and tracing options, or undefined for the plain loop. */
function debugOptions(config: MachineConfig): VcpuJobDebug | undefined {
  if (!config.trace && !config.stats && !config.step && !config.dumpOnExit && !config.gdb) return undefined;
  return {
    startNs: process.hrtime.bigint(),
    ...(config.trace ? { trace: config.trace } : {}),
    ...(config.stats ? { stats: true } : {}),
    ...(config.step ? { step: config.step } : {}),
    ...(config.dumpOnExit ? { dumpOnExit: true } : {}),
    ...(config.gdb ? { debugger: { waitAtStart: config.gdb.wait ?? false } } : {}),
  };
}
