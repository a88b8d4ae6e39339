/**
 * The entry of `tskvm` (bin/tskvm.js): for a `tskvm run` that needs one, a vCPU thread starts
 * loading before the rest of the command line is even evaluated, so that its start-up (a Node
 * environment of its own) overlaps with parsing the flags, reading the guest and building the VM
 * instead of following them. The command line itself (main.ts) is imported only then.
 */
import { destroyVmsAfterExit } from '../kvm/background-close.js';
import { VcpuThread } from '../vcpu/thread.js';

/** Runs the command line on `argv` (without node and the script) and exits with its status. */
export async function launch(argv: readonly string[]): Promise<never> {
  // `tskvm run` runs one guest and exits: the kernel destroys its VM once the process has gone.
  if (argv[0] === 'run') destroyVmsAfterExit();
  if (runsAGuest(argv)) VcpuThread.prestart();
  const { main, exit } = await import('./main.js');
  return exit(await main(argv));
}

/**
 * `tskvm run ...` that will need a vCPU thread, not asking for its help. A one-vCPU run without
 * gdb, --trace or --step runs its vCPU on the main thread (CallerThread): no worker to prestart.
 * The flags are only glanced at here (a wrong guess costs a thread started in vain, or late).
 */
function runsAGuest(argv: readonly string[]): boolean {
  if (argv[0] !== 'run' || argv.includes('--help') || argv.includes('-h')) return false;
  return argv.some((arg) => /^(--cpus|-c|--gdb|--trace|--step)/.test(arg));
}
