/**
 * Guest RAM's views (src/memory/guest-memory.ts): each thread keeps its views by address and size,
 * so a VM whose RAM is mapped where the last one's was reuses that view instead of making V8 count
 * another external buffer. A view must still show the mapping there now: fresh RAM reads zero, and
 * another thread's attach sees the owner's bytes. Needs the native addon (mmap), not KVM.
 */
import { describe, expect, it } from 'vitest';
import { GuestMemory, PAGE_SIZE } from '../../src/memory/guest-memory.js';

const MIB = 1024 * 1024;

describe('GuestMemory views', () => {
  it('a new mapping reads zero through its view, whether or not it lies where the last one did', () => {
    let reused = 0;
    for (let i = 0; i < 8; i++) {
      const first = GuestMemory.create(4 * MIB);
      const view = first.bytes;
      expect(view.length).toBe(4 * MIB);
      view.fill(0xab, 0, PAGE_SIZE);
      view[4 * MIB - 1] = 0xcd;
      const addr = first.hostAddr;
      first.close();
      const second = GuestMemory.create(4 * MIB);
      try {
        const again = second.bytes;
        if (second.hostAddr === addr) {
          reused++;
          expect(again).toBe(view); // the cached view, over the new mapping
        }
        expect(again.length).toBe(4 * MIB);
        expect(again[0]).toBe(0);
        expect(again[PAGE_SIZE - 1]).toBe(0);
        expect(again[4 * MIB - 1]).toBe(0);
      } finally {
        second.close();
      }
    }
    // Linux maps the same size where the last mapping was: the cache is used, not merely allowed.
    expect(reused).toBeGreaterThan(0);
  });

  it('an attached view sees the owner’s bytes; another size at the same address gets a view of its own length', () => {
    const owner = GuestMemory.create(2 * MIB);
    try {
      owner.bytes[123] = 7;
      const attached = GuestMemory.attach(owner.hostAddr, owner.size);
      expect(attached.bytes[123]).toBe(7);
      attached.bytes[456] = 9;
      expect(owner.bytes[456]).toBe(9);
      const shorter = GuestMemory.attach(owner.hostAddr, MIB);
      expect(shorter.bytes.length).toBe(MIB);
      expect(shorter.bytes[123]).toBe(7);
      attached.close(); // not the owner: nothing is unmapped
      expect(owner.bytes[123]).toBe(7);
    } finally {
      owner.close();
    }
    expect(() => owner.bytes).toThrow(/closed/);
  });

  it('keeps a bounded number of views: many mappings at once each read their own bytes', () => {
    const all = Array.from({ length: 12 }, () => GuestMemory.create(MIB));
    try {
      all.forEach((m, i) => (m.bytes[0] = i + 1));
      all.forEach((m, i) => expect(GuestMemory.attach(m.hostAddr, m.size).bytes[0]).toBe(i + 1));
    } finally {
      for (const m of all) m.close();
    }
  });
});
