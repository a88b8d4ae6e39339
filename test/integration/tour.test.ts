/**
 * docs/tour.md is executable: every ```console block in it is a list of commands (lines starting
 * `$ `) each followed by its exact stdout, and optionally `[exit status N]` (default 0). `...` on
 * a line of its own matches any number of lines; `…` (U+2026) inside a line matches any run of
 * characters on that line, empty included (for timings and other values that differ from run to
 * run, such as the start of a --trace line). This file runs every command with bash from the
 * repository root, in document order (later commands may read files earlier ones wrote), with
 * stdin empty (/dev/null) unless the command pipes into itself, and fails when stdout or the exit
 * status differs from what the tour says.
 *
 * stdout is compared line by line, exactly (whitespace included); whether the very last line ends
 * with a newline is not checked. stderr is not compared, only shown when a command fails.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertKvm, describeKvm, ROOT } from './helpers.js';

const TOUR = path.join(ROOT, 'docs', 'tour.md');
/** Per command: generous, because guest code outside long mode is slow on nested KVM hosts. */
const COMMAND_TIMEOUT_MS = 60_000;
const WILDCARD = '...';
/** Inside an expected line: any run of characters on that line. */
const INLINE_WILDCARD = '…';
const STATUS_LINE = /^\[exit status (\d+)\]$/;

export interface TourCommand {
  /** The command as written after `$ `. */
  command: string;
  /** Expected stdout lines; WILDCARD matches any number of lines. */
  expected: string[];
  status: number;
  /** 1-based line of the command in the tour, for messages. */
  line: number;
}

/** Every command of every ```console block in `markdown`, in order. */
export function parseTour(markdown: string): TourCommand[] {
  const lines = markdown.split('\n');
  const commands: TourCommand[] = [];
  let inConsole = false;
  let inOtherFence = false;
  let current: TourCommand | undefined;
  const finish = (): void => {
    if (!current) return;
    const last = current.expected[current.expected.length - 1];
    const m = last === undefined ? null : STATUS_LINE.exec(last);
    if (m) {
      current.status = Number(m[1]);
      current.expected.pop();
    }
    for (const l of current.expected) {
      if (STATUS_LINE.test(l)) throw new Error(`tour.md:${current.line}: [exit status N] must be the last line of a command's output`);
    }
    commands.push(current);
    current = undefined;
  };
  lines.forEach((text, i) => {
    if (inConsole) {
      if (/^```\s*$/.test(text)) {
        finish();
        inConsole = false;
      } else if (text.startsWith('$ ')) {
        finish();
        current = { command: text.slice(2), expected: [], status: 0, line: i + 1 };
      } else if (current) {
        current.expected.push(text);
      } else if (text.trim() !== '') {
        throw new Error(`tour.md:${i + 1}: output before the first command of a console block: ${JSON.stringify(text)}`);
      }
      return;
    }
    if (inOtherFence) {
      if (/^```\s*$/.test(text)) inOtherFence = false;
      return;
    }
    if (/^```console\s*$/.test(text)) inConsole = true;
    else if (text.startsWith('```')) inOtherFence = true;
  });
  if (inConsole) throw new Error('tour.md: a console block is never closed');
  return commands;
}

/** Whether one actual line matches one expected line: exactly, or with INLINE_WILDCARD as `.*`. */
export function lineMatches(expected: string, actual: string): boolean {
  if (!expected.includes(INLINE_WILDCARD)) return expected === actual;
  const pattern = expected
    .split(INLINE_WILDCARD)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${pattern}$`, 's').test(actual);
}

/** Whether `actual` lines match `expected` lines, WILDCARD matching any run of lines. */
export function linesMatch(expected: readonly string[], actual: readonly string[]): boolean {
  const memo = new Map<string, boolean>();
  const go = (e: number, a: number): boolean => {
    const key = `${e},${a}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let r: boolean;
    if (e === expected.length) r = a === actual.length;
    else if (expected[e] === WILDCARD) r = go(e + 1, a) || (a < actual.length && go(e, a + 1));
    else r = a < actual.length && lineMatches(expected[e]!, actual[a]!) && go(e + 1, a + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}

/** stdout as lines; a final newline does not make an extra empty line. */
export function outputLines(stdout: string): string[] {
  if (stdout === '') return [];
  return (stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout).split('\n');
}

interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function runCommand(command: string): Promise<Ran> {
  // Its own process group, so a timeout kills the whole pipeline, not just bash.
  const child = spawn('bash', ['-c', command], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, COMMAND_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, timedOut });
    });
  });
}

const commands = parseTour(readFileSync(TOUR, 'utf8'));

describe('the tour checker', () => {
  it('docs/tour.md has console blocks to check', () => {
    expect(commands.length).toBeGreaterThan(20);
  });

  it('parses commands, expected lines and exit statuses, and ignores other code blocks', () => {
    const md = [
      'text',
      '```sh',
      '$ not a checked command',
      '```',
      '```console',
      '$ a',
      'x',
      '',
      'y',
      '[exit status 3]',
      '$ b',
      '```',
      '```console',
      '$ c',
      '...',
      '```',
    ].join('\n');
    expect(parseTour(md)).toEqual([
      { command: 'a', expected: ['x', '', 'y'], status: 3, line: 6 },
      { command: 'b', expected: [], status: 0, line: 11 },
      { command: 'c', expected: ['...'], status: 0, line: 14 },
    ]);
  });

  it('matches lines exactly, with `...` standing for any number of lines', () => {
    expect(linesMatch(['a', 'b'], ['a', 'b'])).toBe(true);
    expect(linesMatch(['a', 'b'], ['a', 'b '])).toBe(false);
    expect(linesMatch(['a'], ['a', 'b'])).toBe(false);
    expect(linesMatch([], [])).toBe(true);
    expect(linesMatch(['a', '...', 'z'], ['a', 'z'])).toBe(true);
    expect(linesMatch(['a', '...', 'z'], ['a', 'b', 'c', 'z'])).toBe(true);
    expect(linesMatch(['a', '...', 'z'], ['a', 'b', 'c'])).toBe(false);
    expect(linesMatch(['...'], [])).toBe(true);
    expect(outputLines('')).toEqual([]);
    expect(outputLines('a\n\nb\n')).toEqual(['a', '', 'b']);
  });

  it('matches `…` inside a line as any run of characters on that line', () => {
    expect(lineMatches('…cpu0 io', '  0.123456789 cpu0 io')).toBe(true);
    expect(lineMatches('…cpu0 io', 'cpu0 io')).toBe(true);
    expect(lineMatches('a…b…c', 'a.x*b(y)c')).toBe(true);
    expect(lineMatches('a…b', 'a b c')).toBe(false);
    expect(lineMatches('x.y (z) $1', 'x.y (z) $1')).toBe(true); // regex characters are literal
    expect(lineMatches('x.y', 'xzy')).toBe(false);
    expect(lineMatches('…', '')).toBe(true);
    expect(linesMatch(['…ms', '...', 'end'], ['3.5 ms', 'a', 'end'])).toBe(true);
    expect(linesMatch(['…ms'], ['3.5 ms', 'more'])).toBe(false); // one line only
    expect(linesMatch(['...'], ['anything'])).toBe(true); // `...` alone still means lines
  });
});

describeKvm('docs/tour.md: every command does what the tour says', () => {
  let first = true;
  for (const cmd of commands) {
    it(
      cmd.command,
      async () => {
        if (first) {
          first = false;
          assertKvm();
        }
        const r = await runCommand(cmd.command);
        const where = `tour.md:${cmd.line}: $ ${cmd.command}`;
        const context = `${where}\n--- stderr ---\n${r.stderr}`;
        expect(r.timedOut, `${where}\ntimed out after ${COMMAND_TIMEOUT_MS} ms`).toBe(false);
        const actual = outputLines(r.stdout);
        if (cmd.expected.includes(WILDCARD) || cmd.expected.some((l) => l.includes(INLINE_WILDCARD))) {
          const ok = linesMatch(cmd.expected, actual);
          if (!ok)
            expect(actual.join('\n'), `${context}\nstdout does not match (\`...\` = any lines, \`…\` = any characters)`).toBe(
              cmd.expected.join('\n'),
            );
        } else {
          expect(actual.join('\n'), `${context}\nstdout differs`).toBe(cmd.expected.join('\n'));
        }
        expect(r.status, `${context}\nexit status differs (signal ${r.signal})`).toBe(cmd.status);
      },
      COMMAND_TIMEOUT_MS + 10_000,
    );
  }
});
