/**
 * The supervisor process's entry point: `node supervisor-main.js JSON` (SupervisorArgs), spawned
 * detached by startDomain with fd 3 a pipe on which it reports, in one JSON line, that the guest
 * runs or why it does not; then fd 3 is closed and the starting command may exit. stdout and
 * stderr go to the domain's supervisor log.
 */
import { closeSync, writeSync } from 'node:fs';
import { serializeError, type StartReport, type SupervisorArgs } from './protocol.js';
import { Supervisor } from './supervisor.js';
import { runtimePaths, writeLastRun } from './runtime.js';
import { DomainStore } from './store.js';

const START_PIPE_FD = 3;
/** Only the owner may reach anything the supervisor creates: its sockets, logs and records. */
const PRIVATE_UMASK = 0o077;

function report(message: StartReport): void {
  try {
    writeSync(START_PIPE_FD, `${JSON.stringify(message)}\n`);
    closeSync(START_PIPE_FD);
  } catch {
    // The starting command is gone (killed?): the supervisor goes on regardless.
  }
}

async function main(): Promise<number> {
  process.umask(PRIVATE_UMASK);
  const args = JSON.parse(process.argv[2] ?? '{}') as SupervisorArgs;
  process.stderr.write(`${new Date().toISOString()} supervisor ${process.pid} starting domain '${args.name}' (id ${args.id})\n`);
  let started: Awaited<ReturnType<typeof Supervisor.start>>;
  try {
    started = await Supervisor.start(args);
  } catch (err) {
    process.stderr.write(`${new Date().toISOString()} start failed: ${(err as Error).stack ?? String(err)}\n`);
    try {
      const store = await DomainStore.open({ home: args.home });
      await writeLastRun(runtimePaths(store, args.name), { reason: 'failed', state: 'shut off', endedAt: new Date().toISOString() });
    } catch {
      // Nothing more to record.
    }
    report({ ok: false, error: serializeError(err) });
    return 1;
  }
  // Signals: SIGTERM (kill, a host shutdown) destroys the domain cleanly; the terminal's are not ours.
  process.on('SIGTERM', () => void started.supervisor.destroy('destroyed'));
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  report({ ok: true, pid: process.pid, id: args.id, warnings: [] });
  await started.done;
  process.stderr.write(`${new Date().toISOString()} supervisor ${process.pid} ended\n`);
  return 0;
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`${new Date().toISOString()} supervisor failed: ${err.stack ?? String(err)}\n`);
  process.exit(1);
});

process.exit(await main());
