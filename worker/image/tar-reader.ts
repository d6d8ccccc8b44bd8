// A streaming reader for tar archives (ustar, GNU long names, PAX extended headers) as found in
// image layers. It yields one entry at a time; the caller must read or skip the entry's body
// before asking for the next one. Nothing is buffered beyond one chunk and one header.
import { LayerFormatError } from './errors.js';

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'directory' | 'fifo';

export interface TarHeader {
  readonly path: string;
  readonly type: TarEntryType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly sizeBytes: number;
  /** Seconds since the epoch, fractional when a PAX header gave it. */
  readonly mtime: number;
  readonly linkPath: string;
  readonly devMajor: number;
  readonly devMinor: number;
  /** Extended attributes from PAX `SCHILY.xattr.*` records. */
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

export interface TarEntry {
  readonly header: TarHeader;
  /** The entry's content; iterate it fully or call skip(). */
  readonly body: AsyncIterable<Buffer>;
}

const BLOCK = 512;
/** Bounds on metadata pseudo-entries so a hostile archive cannot make us buffer without limit. */
const META_ENTRY_MAX_BYTES = 1 << 20;

/** Reads exact byte counts from an async chunk source. */
class ByteReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(source: AsyncIterable<Buffer>) {
    this.iterator = source[Symbol.asyncIterator]();
  }
  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.iterator.next();
    if (next.done === true) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    return true;
  }
  /** Exactly n bytes, or null at a clean end of input (nothing pending); throws on a short read. */
  async readExact(n: number): Promise<Buffer | null> {
    while (this.pending.length < n) {
      if (!(await this.fill())) {
        if (this.pending.length === 0) return null;
        throw new LayerFormatError(`archive truncated: wanted ${n} bytes, got ${this.pending.length}`);
      }
    }
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }
  /** Yields chunks totalling exactly n bytes, without buffering them. */
  async *readChunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0 && !(await this.fill())) {
        throw new LayerFormatError(`archive truncated: ${left} bytes of an entry missing`);
      }
      const take = Math.min(left, this.pending.length);
      const out = this.pending.subarray(0, take);
      this.pending = this.pending.subarray(take);
      left -= take;
      yield out;
    }
  }
  async drain(): Promise<void> {
    this.pending = Buffer.alloc(0);
    while (await this.fill()) this.pending = Buffer.alloc(0);
  }
}

function cString(buf: Buffer, start: number, len: number): string {
  const field = buf.subarray(start, start + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
function numeric(buf: Buffer, start: number, len: number): number {
  const field = buf.subarray(start, start + len);
  if ((field[0]! & 0x80) !== 0) {
    let value = field[0]! & 0x7f;
    for (let i = 1; i < len; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = cString(buf, start, len).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new LayerFormatError(`bad numeric field ${JSON.stringify(text)} in tar header`);
  return parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = numeric(block, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** Parses PAX records `"<len> key=value\n"`. */
function parsePax(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(data.subarray(pos, space).toString('ascii'), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length) {
      throw new LayerFormatError('malformed PAX extended header');
    }
    const record = data.subarray(space + 1, pos + len - 1); // drop the trailing newline
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new LayerFormatError('malformed PAX record');
    records.set(record.subarray(0, eq).toString('utf8'), record.subarray(eq + 1));
    pos += len;
  }
  return records;
}

const TYPES: Readonly<Record<string, TarEntryType>> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'directory',
  '6': 'fifo',
};

/**
 * Yields the entries of a tar stream. After the end-of-archive blocks the rest of the input is
 * read and discarded so that a digest computed over the whole stream sees every byte.
 */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  let pax = new Map<string, Buffer>();
  let globalPax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;

  for (;;) {
    const block = await reader.readExact(BLOCK);
    if (block === null) return; // end of input without end-of-archive blocks: accepted, as Go's reader does
    if (block.every((b) => b === 0)) {
      await reader.drain();
      return;
    }
    if (!checksumOk(block)) throw new LayerFormatError('tar header checksum mismatch (corrupt archive)');
    const typeflag = String.fromCharCode(block[156]!);
    let size = numeric(block, 124, 12);
    const padded = Math.ceil(size / BLOCK) * BLOCK;

    const readMeta = async (): Promise<Buffer> => {
      if (size > META_ENTRY_MAX_BYTES) throw new LayerFormatError(`tar metadata entry of ${size} bytes is too large`);
      const data = size === 0 ? Buffer.alloc(0) : await reader.readExact(padded);
      if (data === null) throw new LayerFormatError('archive truncated in a metadata entry');
      return Buffer.from(data.subarray(0, size));
    };
    if (typeflag === 'x') {
      pax = parsePax(await readMeta());
      continue;
    }
    if (typeflag === 'g') {
      globalPax = new Map([...globalPax, ...parsePax(await readMeta())]);
      continue;
    }
    if (typeflag === 'L') {
      longName = cString(await readMeta(), 0, size);
      continue;
    }
    if (typeflag === 'K') {
      longLink = cString(await readMeta(), 0, size);
      continue;
    }
    const type = TYPES[typeflag];
    if (type === undefined) throw new LayerFormatError(`unsupported tar entry type ${JSON.stringify(typeflag)}`);

    const magic = block.subarray(257, 263).toString('latin1');
    let path = cString(block, 0, 100);
    if (magic === 'ustar\0') {
      const prefix = cString(block, 345, 155);
      if (prefix !== '') path = `${prefix}/${path}`;
    }
    let linkPath = cString(block, 157, 100);
    let uid = numeric(block, 108, 8);
    let gid = numeric(block, 116, 8);
    let mtime = numeric(block, 136, 12);
    const records = new Map([...globalPax, ...pax]);
    const xattrs = new Map<string, Buffer>();
    for (const [key, value] of records) {
      const text = (): string => value.toString('utf8');
      if (key === 'path') path = text();
      else if (key === 'linkpath') linkPath = text();
      else if (key === 'size') size = Number(text());
      else if (key === 'uid') uid = Number(text());
      else if (key === 'gid') gid = Number(text());
      else if (key === 'mtime') mtime = Number(text());
      else if (key.startsWith('SCHILY.xattr.')) xattrs.set(key.slice('SCHILY.xattr.'.length), value);
    }
    if (longName !== undefined) path = longName;
    if (longLink !== undefined) linkPath = longLink;
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    for (const [field, value] of [['size', size], ['uid', uid], ['gid', gid]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) throw new LayerFormatError(`bad ${field} ${value} for ${path}`);
    }
    if (!Number.isFinite(mtime)) throw new LayerFormatError(`bad mtime for ${path}`);

    // Only regular files carry data; the size field of header-only types (links, devices,
    // directories, fifos) is ignored, as Go's archive/tar does.
    const bodyBytes = type === 'file' ? size : 0;
    const skipBytes = Math.ceil(bodyBytes / BLOCK) * BLOCK;
    const header: TarHeader = {
      path,
      type,
      mode: numeric(block, 100, 8) & 0o7777,
      uid,
      gid,
      sizeBytes: bodyBytes,
      mtime,
      linkPath,
      devMajor: type === 'chardev' || type === 'blockdev' ? numeric(block, 329, 8) : 0,
      devMinor: type === 'chardev' || type === 'blockdev' ? numeric(block, 337, 8) : 0,
      xattrs,
    };
    let consumed = 0;
    const body = (async function* (): AsyncGenerator<Buffer> {
      for await (const chunk of reader.readChunks(bodyBytes)) {
        consumed += chunk.length;
        yield chunk;
      }
    })();
    yield { header, body };
    // Whatever the consumer left unread, then the padding to the block boundary.
    for await (const _ of reader.readChunks(bodyBytes - consumed)) void _;
    const padding = skipBytes - bodyBytes;
    if (padding > 0) for await (const _ of reader.readChunks(padding)) void _;
  }
}
