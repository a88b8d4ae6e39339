// The board of a machine that buildMachine made, built on this thread as a one-vCPU run's vCPU
// thread builds it (src/vcpu/job.ts's attachJob), for the benchmarks that run the exit loop here
// (bench/create-stages.mjs, bench/exit-layers.mjs). `dist` is the tsc outDir to load it from.
import path from 'node:path';

export async function boardHere(dist) {
  const { createPcBoardFromSpec, localDevices } = await import(path.join(dist, 'board', 'pc-board.js'));
  const { VcpuControl } = await import(path.join(dist, 'vcpu', 'control.js'));
  /** `machine`'s devices and a control block for its vCPU, the first timer deadline published. */
  return (machine) => {
    const { vm } = machine;
    const board = createPcBoardFromSpec({
      vmFd: vm.fd.fd,
      memoryAddr: vm.memory.hostAddr,
      memorySize: vm.memory.size,
      irqchip: vm.irqchip,
      serial: [null, null, null, null],
      firmware: machine.firmware,
    });
    const control = new VcpuControl();
    const devices = localDevices(board, (deadline) => control.publishDeadline(deadline));
    devices.pollTimers();
    return { devices, control };
  };
}
