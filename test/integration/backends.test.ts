/**
 * The two backends: the node-gyp addon (default) and ffi-rs (no compiler needed). The whole
 * integration suite runs on both (`npm test` runs it again with TSKVM_BACKEND=ffi); this file
 * checks the choosing.
 */
import { expect, it } from 'vitest';
import { assertKvm, describeKvm, guest, runCli } from './helpers.js';

const NOTICE = /^tskvm: the native addon is not usable \(.*is missing.*\); using the ffi-rs backend/;

describeKvm('backend selection', () => {
  it('without the addon, tskvm run still works and says once that it uses ffi-rs', async () => {
    assertKvm();
    const r = await runCli(['run', guest('hello')], { env: { TSKVM_ADDON_PATH: '/nonexistent/tskvm.node', TSKVM_BACKEND: '' } });
    expect(r.status).toBe(42);
    expect(r.stdout.toString()).toBe('Hello from a tskvm guest!\n');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(NOTICE);
  });

  it('TSKVM_BACKEND=ffi uses ffi-rs without a notice, and =addon insists on the addon', async () => {
    const ffi = await runCli(['run', guest('hello')], { env: { TSKVM_BACKEND: 'ffi' } });
    expect([ffi.status, ffi.stderr]).toEqual([42, '']);
    const addon = await runCli(['run', guest('hello')], { env: { TSKVM_BACKEND: 'addon', TSKVM_ADDON_PATH: '/nonexistent/tskvm.node' } });
    expect(addon.status).toBe(1);
    expect(addon.stderr).toMatch(/is missing; build it with `npm run build`/);
  });

  it('a bad TSKVM_BACKEND is a usage error', async () => {
    const r = await runCli(['run', guest('hello')], { env: { TSKVM_BACKEND: 'wasm' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/TSKVM_BACKEND='wasm' is not a backend: use addon or ffi/);
  });

  it('doctor says which backend loads and why', async () => {
    const r = await runCli(['doctor', '--json'], { env: { TSKVM_ADDON_PATH: '/nonexistent/tskvm.node', TSKVM_BACKEND: '' } });
    expect(r.status).toBe(0);
    const d = JSON.parse(r.stdout.toString());
    expect(d.backend.used).toBe('ffi');
    expect(d.backend.addon.loaded).toBe(false);
    expect(d.backend.ffi.loaded).toBe(true);
    expect(d.backend.why).toMatch(/addon is not usable/);
  });
});
