/**
 * Shared by the domain integration tests: a temporary TSKVM_HOME per suite, the CLI run against
 * it, polling for a state, a console session driven like a user at a terminal, and a clean-up
 * that ends every supervisor the suite started (even ones a test left behind or killed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, ROOT, runCli, type CliResult } from './helpers.js';

export class DomainHome {
  readonly home: string;
  readonly work: string;
  /** Every XML `dumpxml` printed, for the libvirt check. */
  readonly dumped: string[] = [];

  constructor(label: string) {
    this.home = mkdtempSync(path.join(os.tmpdir(), `tskvm-${label}-`));
    this.work = mkdtempSync(path.join(os.tmpdir(), `tskvm-${label}-work-`));
  }

  get env(): NodeJS.ProcessEnv {
    return { TSKVM_HOME: this.home };
  }

  /** A guest image copied into the work directory (so a test may remove or change it). */
  guest(name: string, file = `${name}.bin`): string {
    const target = path.join(this.work, file);
    if (!existsSync(target)) copyFileSync(path.join(ROOT, 'guests', 'build', `${name}.bin`), target);
    return target;
  }

  file(name: string, contents: string | Uint8Array): string {
    const target = path.join(this.work, name);
    writeFileSync(target, contents);
    return target;
  }

  cli(args: string[], options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
    return runCli(args, { ...options, env: { ...this.env, ...options.env } });
  }

  async dumpxml(name: string): Promise<string> {
    const r = await this.cli(['dumpxml', name]);
    if (r.status !== 0) throw new Error(`dumpxml ${name} failed: ${r.stderr}`);
    const xml = r.stdout.toString();
    this.dumped.push(xml);
    return xml;
  }

  async state(name: string): Promise<string> {
    const r = await this.cli(['domstate', '--reason', name]);
    if (r.status !== 0) throw new Error(`domstate ${name} failed: ${r.stderr}`);
    return r.stdout.toString().trim();
  }

  async waitForState(name: string, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      last = await this.state(name);
      if (pattern.test(last)) return last;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`domain ${name} did not reach ${pattern} within ${timeoutMs} ms (last: ${last})`);
  }

  record(name: string): { pid: number; startTime: string; id: number } | undefined {
    const file = path.join(this.home, 'run', name, 'supervisor.json');
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { pid: number; startTime: string; id: number }) : undefined;
  }

  supervisorLog(name: string): string {
    const file = path.join(this.home, 'log', `${name}.log`);
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Ends every supervisor under this home (SIGKILL: tests must not leave VMs behind), then removes it all. */
  cleanUp(): void {
    const run = path.join(this.home, 'run');
    if (existsSync(run)) {
      for (const name of readdirSync(run)) {
        const record = this.record(name);
        if (record && startTimeOf(record.pid) === record.startTime) {
          try {
            process.kill(record.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    }
    rmSync(this.home, { recursive: true, force: true });
    rmSync(this.work, { recursive: true, force: true });
  }
}

export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // a zombie has ended
    const STARTTIME_INDEX = 19; // field 22, counted from field 3 after the ')' of comm
    return fields[STARTTIME_INDEX];
  } catch {
    return undefined;
  }
}

const DEFAULT_DEVICES =
  "<serial type='pty'><target port='0'/></serial>\n    <console type='pty'><target type='serial' port='0'/></console>";

/** A domain definition for a tskvm guest (flat binaries by default). */
export function domainXml(options: {
  name: string;
  kernel: string;
  memory?: string;
  vcpus?: number;
  extra?: string;
  devices?: string;
  uuid?: string;
}): string {
  return `<domain type='kvm'>
  <name>${options.name}</name>
${options.uuid ? `  <uuid>${options.uuid}</uuid>\n` : ''}  <memory unit='MiB'>${options.memory ?? '16'}</memory>
  <vcpu placement='static'>${options.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${options.kernel}</kernel>
  </os>
${options.extra ?? ''}
  <devices>
    ${options.devices ?? DEFAULT_DEVICES}
  </devices>
</domain>
`;
}

/**
 * An attached `tskvm console NAME`: type into it, wait for output, detach with Ctrl-].
 * Nothing depends on the guest's speed: every step waits for what it needs to see.
 */
export class ConsoleSession {
  private out = '';
  private err = '';
  private readonly child: ChildProcess;
  readonly closed: Promise<number | null>;

  constructor(home: DomainHome, args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...home.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.out += d.toString('latin1')));
    this.child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.child.stdin!.on('error', () => {});
    this.closed = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  async waitFor(where: 'stdout' | 'stderr', text: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(where === 'stdout' ? this.out : this.err).includes(text)) {
      if (Date.now() > deadline)
        throw new Error(
          `console: no '${text}' on ${where} within ${timeoutMs} ms ` +
            `(stdout ${JSON.stringify(this.out)}, stderr ${JSON.stringify(this.err)})`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  type(text: string): void {
    this.child.stdin!.write(text);
  }

  async detach(): Promise<number | null> {
    this.child.stdin!.write('\x1d');
    return this.closed;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** Attaches, types `text`, waits for its echo, detaches; returns the console's exit status. */
export async function echoThroughConsole(home: DomainHome, name: string, text: string): Promise<number | null> {
  const session = new ConsoleSession(home, ['console', name]);
  try {
    await session.waitFor('stderr', 'Escape character is ^]');
    session.type(text);
    await session.waitFor('stdout', text);
    return await session.detach();
  } finally {
    session.kill();
  }
}
