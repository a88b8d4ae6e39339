// bench/kvm-loop.c, the C reference loop of the benchmarks: built (gcc -O2) when missing or older
// than its source, into bench/build/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const loopSource = path.join(root, 'bench', 'kvm-loop.c');
export const loopBinary = path.join(root, 'bench', 'build', 'kvm-loop');

export function buildCLoop() {
  const stale = (() => {
    try {
      return statSync(loopBinary).mtimeMs < statSync(loopSource).mtimeMs;
    } catch {
      return true;
    }
  })();
  if (!stale) return;
  mkdirSync(path.dirname(loopBinary), { recursive: true });
  execFileSync('gcc', ['-O2', '-Wall', '-o', loopBinary, loopSource], { stdio: 'inherit' });
}
