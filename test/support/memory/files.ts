import { createHash } from 'node:crypto';
import type { BatchOutput, BatchPart, RowOutcome } from '../../../shared/core/batches/model.js';
import { AssemblyLostError, InputChangedError, InputMissingError } from '../../../shared/core/errors.js';
import type { AssemblingFile, AssemblingFiles, BatchFiles, InputRow, RowCursor } from '../../../shared/core/ports.js';

interface StoredObject {
  body: Buffer;
  etag: string;
}

/**
 * The BatchFiles port in memory: objects in a Map, by bucket and key, each with an ETag of its
 * content (so a replaced input reads as changed, as on S3). Input parts are read as JSON Lines —
 * rows stored by `putRows`, and `file` parts holding JSON Lines text — with the positions the port
 * promises, so a plan can resume mid-file. CSV is not read here: its parsing is the adapter's (and
 * is tested with it), not the engines' concern.
 *
 * Outputs are assembled as the S3 adapter does it: each output's lines gather in its tail, which
 * goes up as a part of a multipart upload once it reaches `partBytes` (never, by default), and an
 * upload that was completed or aborted is gone (`AssemblyLostError`) for a step that carried it.
 */
export class MemoryBatchFiles implements BatchFiles {
  private readonly objects = new Map<string, StoredObject>();
  private readonly uploads = new Map<string, string[]>();
  private uploadIds = 0;
  private readonly partBytes: number;

  constructor(
    readonly bucket = 'memory-data',
    options: { partBytes?: number } = {},
  ) {
    this.partBytes = options.partBytes ?? Number.POSITIVE_INFINITY;
  }

  async putJson(key: string, value: unknown): Promise<void> {
    this.putObject(this.bucket, key, JSON.stringify(value));
  }

  async getJson(key: string): Promise<unknown> {
    return JSON.parse(this.object(this.bucket, key).body.toString('utf8'));
  }

  async putRows(key: string, rows: readonly unknown[]): Promise<void> {
    this.putObject(this.bucket, key, rows.map((row) => `${JSON.stringify(row ?? null)}\n`).join(''));
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    return this.objects.has(address(bucket, key));
  }

  async head(bucket: string, key: string): Promise<{ etag: string; bytes: number } | undefined> {
    const object = this.objects.get(address(bucket, key));
    return object && { etag: object.etag, bytes: object.body.length };
  }

  async *rows(parts: readonly BatchPart[], from?: RowCursor): AsyncIterable<InputRow> {
    for (let index = from?.part ?? 0; index < parts.length; index++) {
      const part = parts[index]!;
      if (part.kind === 'file' && part.format !== 'jsonl') {
        throw new Error(`MemoryBatchFiles reads JSON Lines only, not ${part.format} (${part.key})`);
      }
      const bucket = part.kind === 'rows' ? this.bucket : part.bucket;
      const object = this.object(bucket, part.key);
      if (part.kind === 'file' && part.etag !== undefined && part.etag !== object.etag) {
        throw new InputChangedError(bucket, part.key);
      }
      const start = from?.part === index ? { byte: from.byte, fileLine: from.fileLine } : { byte: 0, fileLine: 1 };
      for (const line of lines(object.body, start)) {
        if (line.text.trim() === '') continue;
        const at = { part: index, byte: line.byte, fileLine: line.fileLine };
        try {
          yield { input: JSON.parse(line.text), at };
        } catch (error) {
          yield { invalid: `not JSON: ${(error as Error).message.slice(0, 200)}`, at };
        }
      }
    }
  }

  async putOutcomes(key: string, outcomes: readonly RowOutcome[]): Promise<void> {
    this.putObject(this.bucket, key, outcomes.map((row) => `${JSON.stringify(row)}\n`).join(''));
  }

  async getOutcomes(key: string): Promise<RowOutcome[]> {
    return this.text(key)
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as RowOutcome);
  }

  async assemble(prefix: string, outcomes: AsyncIterable<RowOutcome>, from: AssemblingFiles): Promise<AssemblingFiles> {
    const files = structuredClone(from);
    const file = (name: string, extension: string, contentType: string): AssemblingFile =>
      (files[name] ??= { key: `${prefix}${name}.${extension}`, contentType, parts: [], bytes: 0, lines: 0, tail: '' });
    const results = file('results', 'jsonl', 'application/x-ndjson');
    const errors = file('errors', 'jsonl', 'application/x-ndjson');
    const write = (out: AssemblingFile, line: string) => {
      out.tail += line;
      out.bytes += Buffer.byteLength(line);
      out.lines++;
      if (out.tail.length >= this.partBytes) this.uploadPart(out);
    };
    for await (const row of outcomes) {
      const { outputs, ...shown } = row;
      const line = `${JSON.stringify(shown)}\n`;
      write(results, line);
      if (row.status === 'FAILED') write(errors, line);
      for (const [name, text] of Object.entries(outputs ?? {})) write(file(name, 'txt', 'text/plain'), `${text}\n`);
    }
    return files;
  }

  async completeAssembly(files: AssemblingFiles): Promise<Record<string, BatchOutput>> {
    const outputs: Record<string, BatchOutput> = {};
    for (const [name, file] of Object.entries(files)) {
      if (file.uploadId === undefined) {
        this.putObject(this.bucket, file.key, file.tail);
      } else {
        const parts = this.uploads.get(file.uploadId);
        if (!parts || parts.length < file.parts.length) throw new AssemblyLostError(file.key);
        this.uploads.delete(file.uploadId);
        this.putObject(this.bucket, file.key, parts.slice(0, file.parts.length).join('') + file.tail);
      }
      outputs[name] = { key: file.key, bytes: file.bytes, lines: file.lines };
    }
    return outputs;
  }

  async uploadUrl(key: string, expiresSeconds: number): Promise<string> {
    return `memory://${this.bucket}/${key}?method=PUT&expires=${expiresSeconds}`;
  }

  async downloadUrl(key: string, expiresSeconds: number): Promise<string> {
    return `memory://${this.bucket}/${key}?expires=${expiresSeconds}`;
  }

  // ─── For tests ────────────────────────────────────────────────────────────────────────────────

  /** Writes an object as a caller (or an upload through a presigned URL) would. */
  putObject(bucket: string, key: string, body: string): void {
    const bytes = Buffer.from(body, 'utf8');
    const etag = `"${createHash('md5').update(bytes).digest('hex')}"`;
    this.objects.set(address(bucket, key), { body: bytes, etag });
  }

  deleteObject(bucket: string, key: string): void {
    this.objects.delete(address(bucket, key));
  }

  /** An object of the system's bucket as text; throws `InputMissingError` for none. */
  text(key: string, bucket = this.bucket): string {
    return this.object(bucket, key).body.toString('utf8');
  }

  /** Keys in the system's bucket under `prefix`, sorted. */
  keys(prefix = ''): string[] {
    const start = `${this.bucket}/`;
    return [...this.objects.keys()]
      .filter((name) => name.startsWith(start + prefix))
      .map((name) => name.slice(start.length))
      .sort();
  }

  /** Multipart uploads begun and neither completed nor aborted. */
  openUploads(): number {
    return this.uploads.size;
  }

  private uploadPart(file: AssemblingFile): void {
    if (file.uploadId === undefined) {
      file.uploadId = `upload-${++this.uploadIds}`;
      this.uploads.set(file.uploadId, []);
    }
    const parts = this.uploads.get(file.uploadId);
    if (!parts) throw new AssemblyLostError(file.key);
    const n = file.parts.length + 1;
    // Re-sending part n (a twin step) replaces it, as S3 does.
    parts[n - 1] = file.tail;
    file.parts.push({ n, etag: `"part-${n}"` });
    file.tail = '';
  }

  private object(bucket: string, key: string): StoredObject {
    const object = this.objects.get(address(bucket, key));
    if (!object) throw new InputMissingError(bucket, key);
    return object;
  }
}

function address(bucket: string, key: string): string {
  return `${bucket}/${key}`;
}

/** The lines of a body from `start` on, each with the byte and file line it starts at. */
function* lines(body: Buffer, start: { byte: number; fileLine: number }) {
  let fileLine = start.fileLine;
  for (let byte = start.byte; byte < body.length; fileLine++) {
    const nl = body.indexOf(10, byte);
    const end = nl === -1 ? body.length : nl;
    let text = body.subarray(byte, end).toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (byte === 0) text = text.replace(/^\uFEFF/, '');
    yield { text, byte, fileLine };
    byte = end + 1;
  }
}
