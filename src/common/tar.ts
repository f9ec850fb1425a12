// A minimal POSIX ustar writer: regular files only, whole archive in memory. Enough for zone
// bundles (a few small text files), and small enough to read in one sitting, where a tar package
// would bring streams, links, pax headers and a dependency we do not need.

const BLOCK = 512;

export interface TarEntry {
  /** Relative, '/'-separated, ASCII; at most 255 bytes (a prefix/name split at a '/'). */
  name: string;
  data: Buffer;
  mtime: Date;
  /** Default 0o644. */
  mode?: number;
}

/** The archive of `entries`, in order, with the two zero blocks that end it. */
export function tarArchive(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(header(entry), entry.data);
    const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

function header(entry: TarEntry): Buffer {
  const { prefix, name } = splitName(entry.name);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'ascii');
  octal(h, 100, 8, entry.mode ?? 0o644);
  octal(h, 108, 8, 0); // uid
  octal(h, 116, 8, 0); // gid
  octal(h, 124, 12, entry.data.length);
  octal(h, 136, 12, Math.floor(entry.mtime.getTime() / 1000));
  h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  h.write('0', 156, 1, 'ascii'); // a regular file
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  h.write(prefix, 345, 155, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** A field of `width` bytes: zero-padded octal digits and a NUL. */
function octal(h: Buffer, offset: number, width: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > width - 1) throw new RangeError(`tar: ${value} does not fit in ${width - 1} octal digits`);
  h.write(`${digits.padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

function splitName(path: string): { prefix: string; name: string } {
  if (!/^[\x20-\x7e]+$/.test(path) || path.startsWith('/') || path.split('/').includes('..')) {
    throw new RangeError(`tar: unsafe entry name ${JSON.stringify(path)}`);
  }
  if (path.length <= 100) return { prefix: '', name: path };
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    if (i <= 155 && path.length - i - 1 <= 100) return { prefix: path.slice(0, i), name: path.slice(i + 1) };
  }
  throw new RangeError(`tar: entry name too long for ustar: ${path}`);
}
