import { describe, expect, it } from 'vitest';
import { detectFormat, loadImage, type FormatChoice } from '../../src/loader/image.js';
import { loaderError } from './helpers.js';

const MiB = 2 ** 20;

/** A 512-byte image with a recognisable pattern and (optionally) the 0x55 0xAA signature. */
function bootSector(signed = true): Uint8Array {
  const image = new Uint8Array(512);
  for (let i = 0; i < 510; i++) image[i] = (i * 7 + 3) & 0xff;
  if (signed) {
    image[510] = 0x55;
    image[511] = 0xaa;
  } else {
    image[510] = 0x55;
    image[511] = 0xab;
  }
  return image;
}

function pattern(length: number): Uint8Array {
  const image = new Uint8Array(length);
  for (let i = 0; i < length; i++) image[i] = (i * 13 + 1) & 0xff;
  return image;
}

describe('detectFormat', () => {
  it('recognises exactly 512 bytes ending 0x55 0xAA as a boot sector', () => {
    expect(detectFormat(bootSector())).toBe('bootsector');
  });

  it('treats 512 bytes without the signature as flat', () => {
    expect(detectFormat(bootSector(false))).toBe('flat');
    const reversed = bootSector();
    reversed[510] = 0xaa;
    reversed[511] = 0x55;
    expect(detectFormat(reversed)).toBe('flat');
    expect(detectFormat(new Uint8Array(512))).toBe('flat');
  });

  it('treats 511 and 513 bytes ending in the signature as flat', () => {
    const short = new Uint8Array(511);
    short[509] = 0x55;
    short[510] = 0xaa;
    expect(detectFormat(short)).toBe('flat');
    const long = new Uint8Array(513);
    long[510] = 0x55;
    long[511] = 0xaa;
    expect(detectFormat(long)).toBe('flat');
    const longEnding = new Uint8Array(513);
    longEnding[511] = 0x55;
    longEnding[512] = 0xaa;
    expect(detectFormat(longEnding)).toBe('flat');
  });
});

describe('loadImage: flat', () => {
  it('copies the bytes to 0x10000 and starts at 1000:0000 with the stack at 1000:8000', () => {
    const memory = new Uint8Array(MiB).fill(0xcc);
    const image = pattern(1000);
    const loaded = loadImage(image, memory);
    expect(loaded).toEqual({
      format: 'flat',
      loadAddress: 0x10000,
      size: 1000,
      entry: { cs: 0x1000, ip: 0, ds: 0x1000, es: 0x1000, fs: 0x1000, gs: 0x1000, ss: 0x1000, sp: 0x8000, bp: 0x8000, dx: 0 },
    });
    expect(Array.from(memory.subarray(0x10000, 0x10000 + 1000))).toEqual(Array.from(image));
    // Nothing around the image was touched.
    expect(memory[0xffff]).toBe(0xcc);
    expect(memory[0x10000 + 1000]).toBe(0xcc);
    expect(memory.subarray(0, 0x10000).every((b) => b === 0xcc)).toBe(true);
  });

  it('loads a 512-byte image without the signature as flat under auto', () => {
    const memory = new Uint8Array(MiB);
    const image = bootSector(false);
    const loaded = loadImage(image, memory, 'auto');
    expect(loaded.format).toBe('flat');
    expect(loaded.loadAddress).toBe(0x10000);
    expect(Array.from(memory.subarray(0x10000, 0x10200))).toEqual(Array.from(image));
    expect(memory[0x7c00]).toBe(0);
  });

  it('loads a boot sector at 0x10000 when --format flat is forced', () => {
    const memory = new Uint8Array(MiB);
    const image = bootSector();
    const loaded = loadImage(image, memory, 'flat');
    expect(loaded.format).toBe('flat');
    expect(loaded.loadAddress).toBe(0x10000);
    expect(loaded.entry.cs).toBe(0x1000);
    expect(loaded.entry.ip).toBe(0);
    expect(loaded.entry.dx).toBe(0);
    expect(Array.from(memory.subarray(0x10000, 0x10200))).toEqual(Array.from(image));
    expect(memory.subarray(0x7c00, 0x7e00).every((b) => b === 0)).toBe(true);
  });

  it('fits an image that ends exactly at the end of guest RAM', () => {
    const memory = new Uint8Array(0x10000 + 16);
    const loaded = loadImage(pattern(16), memory);
    expect(loaded.size).toBe(16);
    expect(memory[0x10000 + 15]).toBe((15 * 13 + 1) & 0xff);
  });
});

describe('loadImage: boot sector', () => {
  it('copies the sector to 0x7C00 and starts at 0000:7C00 with DL=0x80 and SS:SP=0000:7C00', () => {
    const memory = new Uint8Array(MiB).fill(0xcc);
    const image = bootSector();
    const loaded = loadImage(image, memory);
    expect(loaded.format).toBe('bootsector');
    expect(loaded.loadAddress).toBe(0x7c00);
    expect(loaded.size).toBe(512);
    expect(loaded.entry).toMatchObject({ cs: 0, ip: 0x7c00, ds: 0, es: 0, ss: 0, sp: 0x7c00, dx: 0x80 });
    expect(loaded.entry.dx & 0xff).toBe(0x80);
    expect(Array.from(memory.subarray(0x7c00, 0x7e00))).toEqual(Array.from(image));
    expect(memory[0x7bff]).toBe(0xcc);
    expect(memory[0x7e00]).toBe(0xcc);
    expect(memory[0x10000]).toBe(0xcc);
  });

  it('honours an explicit --format bootsector on a valid sector', () => {
    const memory = new Uint8Array(MiB);
    expect(loadImage(bootSector(), memory, 'bootsector').loadAddress).toBe(0x7c00);
    expect(memory[0x7c00 + 511]).toBe(0xaa);
  });

  it.each([1, 511, 513, 1024])('rejects a forced boot sector of %i bytes, naming the size', (size) => {
    const memory = new Uint8Array(MiB).fill(0xcc);
    const image = pattern(size);
    const err = loaderError(() => loadImage(image, memory, 'bootsector', 'disk.img'));
    expect(err.message).toBe(`disk.img is ${size} bytes, but a boot sector is exactly 512: use --format flat for other images`);
    expect(memory.every((b) => b === 0xcc)).toBe(true);
  });

  it('rejects a forced boot sector without the signature, naming it', () => {
    const memory = new Uint8Array(MiB).fill(0xcc);
    const err = loaderError(() => loadImage(bootSector(false), memory, 'bootsector', 'mbr.bin'));
    expect(err.message).toContain('mbr.bin');
    expect(err.message).toContain('boot signature 0x55 0xAA');
    expect(err.message).toContain('offset 510');
    expect(err.message).toContain('--format flat');
    expect(memory.every((b) => b === 0xcc)).toBe(true);
  });
});

describe('loadImage: bad images', () => {
  it.each<FormatChoice>(['auto', 'flat', 'bootsector'])('rejects an empty image (format %s)', (format) => {
    const memory = new Uint8Array(MiB).fill(0xcc);
    const err = loaderError(() => loadImage(new Uint8Array(0), memory, format, 'empty.bin'));
    expect(err.message).toBe('empty.bin is empty: give a flat binary or a 512-byte boot sector');
    expect(memory.every((b) => b === 0xcc)).toBe(true);
  });

  it('defaults the name to "image"', () => {
    const err = loaderError(() => loadImage(new Uint8Array(0), new Uint8Array(16)));
    expect(err.message.startsWith('image is empty')).toBe(true);
  });

  it('rejects a flat image that does not fit, naming --memory and the size needed', () => {
    const memory = new Uint8Array(0x10000 + 100).fill(0xcc);
    const err = loaderError(() => loadImage(pattern(101), memory, 'auto', 'big.bin'));
    expect(err.message).toContain('big.bin');
    expect(err.message).toContain('101 bytes');
    expect(err.message).toContain('0x10000');
    expect(err.message).toContain(`${0x10000 + 100} bytes of guest RAM`);
    expect(err.message).toContain('options.memory');
    expect(err.message).toContain('raise options.memory to at least 1M');
    expect(memory.every((b) => b === 0xcc)).toBe(true);
  });

  it('rejects a boot sector when guest RAM ends below 0x7E00', () => {
    const memory = new Uint8Array(0x7c00 + 256).fill(0xcc);
    const err = loaderError(() => loadImage(bootSector(), memory));
    expect(err.message).toContain('options.memory');
    expect(err.message).toContain('raise options.memory to at least 1M');
    expect(memory.every((b) => b === 0xcc)).toBe(true);
  });
});
