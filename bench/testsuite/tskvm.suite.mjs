// bench/testsuite.mjs, tskvm's half: N guest tests written with tskvm/vitest — each boots the
// greeter boot sector in-process (through tskvm's BIOS, as a boot sector boots by default), waits
// for its prompt, types a name, waits for the answer and checks the exit code.
import { beforeAll, expect } from 'vitest';
import { assemble } from '../../dist/testing/index.js';
import { kvmTest } from '../../dist/testing/vitest.js';
import { GREETER_BOOT_SECTOR, nameFor } from './greeter.mjs';

const TESTS = Number(process.env.TSKVM_BENCH_TESTS || 50);
let image;
beforeAll(async () => {
  image = await assemble(GREETER_BOOT_SECTOR, { format: 'bootsector', name: 'greeter.boot.S' });
});

kvmTest.for(Array.from({ length: TESTS }, (_, i) => i))('greets guest %i', async (i, { guest }) => {
  const name = nameFor(i);
  const run = await guest.start({ image, timeoutMs: 60_000 });
  await run.console.expect('name? ');
  run.console.write(`${name}\n`);
  await run.console.expect(`hello, ${name}!`);
  await expect(run).toExitWith(name.length);
});
