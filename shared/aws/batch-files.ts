import type { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  NoSuchKey,
  NoSuchUpload,
  NotFound,
  PutObjectCommand,
  type S3Client,
  type S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { parse as parseCsv } from 'csv-parse/sync';
import type { BatchOutput, BatchPart, RowOutcome } from '../core/batch.js';
import { AssemblyLostError, InputChangedError, InputMissingError } from '../core/errors.js';
import type { AssemblingFile, AssemblingFiles, BatchFiles, InputRow, RowCursor } from '../core/ports.js';

/** What an output gathers before it goes up as one part (S3: every part but the last ≥ 5 MiB). */
const PART_BYTES = 8 * 1024 * 1024;

/** A CSV record may span lines inside quotes, up to this many characters; past it the line fails alone. */
const MAX_CSV_RECORD_CHARS = 1024 * 1024;

/** A line of a file, without its line break, and where it starts. */
type Line = { text: string; byte: number; fileLine: number };
type Row = Omit<InputRow, 'at'> & { at: Omit<RowCursor, 'part'> };

/**
 * A batch's files on S3. Inputs and outputs are streamed, so memory follows the chunk size, not
 * the batch size: input files are read line by line, and outputs are written as multipart uploads
 * fed as the rows go by — uploads that outlive one finalize step, so a batch of any size is
 * assembled in steps that each finish in time.
 */
export class S3BatchFiles implements BatchFiles {
  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
  ) {}

  async putJson(key: string, value: unknown): Promise<void> {
    await this.put(key, JSON.stringify(value), 'application/json');
  }

  async getJson(key: string): Promise<unknown> {
    return JSON.parse(await this.text(this.bucket, key));
  }

  async putRows(key: string, rows: readonly unknown[]): Promise<void> {
    await this.put(key, rows.map((row) => `${JSON.stringify(row ?? null)}\n`).join(''), 'application/x-ndjson');
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    return (await this.etag(bucket, key)) !== undefined;
  }

  async etag(bucket: string, key: string): Promise<string | undefined> {
    return (await this.head(bucket, key))?.etag;
  }

  async head(bucket: string, key: string): Promise<{ etag: string; bytes: number } | undefined> {
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { etag: head.ETag ?? '', bytes: head.ContentLength ?? 0 };
    } catch (error) {
      if (error instanceof NotFound || error instanceof NoSuchKey) return undefined;
      const status = (error as S3ServiceException).$metadata?.httpStatusCode;
      if (status === 403 || status === 404 || status === 301) return undefined;
      throw error;
    }
  }

  async *rows(parts: readonly BatchPart[], from?: RowCursor): AsyncIterable<InputRow> {
    for (let index = from?.part ?? 0; index < parts.length; index++) {
      const part = parts[index]!;
      const start = from?.part === index ? { byte: from.byte, fileLine: from.fileLine } : { byte: 0, fileLine: 1 };
      let rows: AsyncIterable<Row>;
      if (part.kind === 'rows') {
        rows = jsonLines(this.lines(this.bucket, part.key, undefined, start));
      } else if (part.format === 'csv') {
        // Resuming past the header: it is read on its own first (the reader stops right after it).
        const header = start.byte > 0 ? await csvHeader(this.lines(part.bucket, part.key, part.etag)) : undefined;
        rows = csvRows(this.lines(part.bucket, part.key, part.etag, start), header);
      } else {
        rows = jsonLines(this.lines(part.bucket, part.key, part.etag, start));
      }
      for await (const row of rows) yield { ...row, at: { part: index, ...row.at } };
    }
  }

  async putOutcomes(key: string, outcomes: readonly RowOutcome[]): Promise<void> {
    await this.put(key, outcomes.map((row) => `${JSON.stringify(row)}\n`).join(''), 'application/x-ndjson');
  }

  async getOutcomes(key: string): Promise<RowOutcome[]> {
    const text = await this.text(this.bucket, key);
    return text
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
    const write = async (out: AssemblingFile, line: string) => {
      out.tail += line;
      out.bytes += Buffer.byteLength(line);
      out.lines++;
      // Characters never outnumber bytes: a tail this long is at least a part.
      if (out.tail.length >= PART_BYTES) await this.uploadPart(out);
    };
    for await (const row of outcomes) {
      const { outputs, ...shown } = row;
      const line = `${JSON.stringify(shown)}\n`;
      await write(results, line);
      if (row.status === 'FAILED') await write(errors, line);
      for (const [name, text] of Object.entries(outputs ?? {}))
        await write(file(name, 'txt', 'text/plain'), `${text}\n`);
    }
    return files;
  }

  async completeAssembly(files: AssemblingFiles): Promise<Record<string, BatchOutput>> {
    const outputs: Record<string, BatchOutput> = {};
    for (const [name, file] of Object.entries(files)) {
      if (file.uploadId === undefined) {
        // Never reached a part: one plain object.
        await this.put(file.key, file.tail, file.contentType);
      } else {
        const out = structuredClone(file);
        if (out.tail !== '') await this.uploadPart(out);
        await this.lostUpload(out.key, () =>
          this.s3.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: out.key,
              UploadId: out.uploadId,
              MultipartUpload: { Parts: out.parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) },
            }),
          ),
        );
      }
      outputs[name] = { key: file.key, bytes: file.bytes, lines: file.lines };
    }
    return outputs;
  }

  /** Sends a file's tail as its next part (starting its upload on the first). */
  private async uploadPart(file: AssemblingFile): Promise<void> {
    if (file.uploadId === undefined) {
      const created = await this.s3.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: file.key, ContentType: file.contentType }),
      );
      file.uploadId = created.UploadId!;
    }
    const n = file.parts.length + 1;
    const { ETag } = await this.lostUpload(file.key, () =>
      this.s3.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: file.key,
          UploadId: file.uploadId,
          PartNumber: n,
          Body: file.tail,
        }),
      ),
    );
    file.parts.push({ n, etag: ETag! });
    file.tail = '';
  }

  /** An upload that is gone (a twin finalize step completed it, or it expired) is the caller's to restart. */
  private async lostUpload<T>(key: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof NoSuchUpload || (error as S3ServiceException).name === 'NoSuchUpload') {
        throw new AssemblyLostError(key);
      }
      throw error;
    }
  }

  uploadUrl(key: string, expiresSeconds: number): Promise<string> {
    return getSignedUrl(this.s3, new PutObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: expiresSeconds,
    });
  }

  downloadUrl(key: string, expiresSeconds: number): Promise<string> {
    return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: expiresSeconds,
    });
  }

  private async put(key: string, body: string, contentType: string): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: contentType,
        // Said outright: the SDK leaves it out for an empty body (an empty `errors` file) and warns.
        ContentLength: Buffer.byteLength(body),
      }),
    );
  }

  /** An object's body, from byte `start`; with `etag`, only that version of it (S3 checks If-Match, and so do we). */
  private async body(bucket: string, key: string, etag?: string, start = 0): Promise<Readable> {
    let object: GetObjectCommandOutput;
    try {
      object = await this.s3.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          IfMatch: etag,
          ...(start > 0 ? { Range: `bytes=${start}-` } : {}),
        }),
      );
    } catch (error) {
      const status = (error as S3ServiceException).$metadata?.httpStatusCode;
      if (error instanceof NoSuchKey || status === 404 || status === 403) throw new InputMissingError(bucket, key);
      if (status === 412) throw new InputChangedError(bucket, key);
      throw error;
    }
    const body = object.Body as Readable;
    // Emulators may ignore If-Match; the ETag of what came back says the same.
    if (etag !== undefined && object.ETag !== etag) {
      body.destroy();
      throw new InputChangedError(bucket, key);
    }
    return body;
  }

  private async text(bucket: string, key: string): Promise<string> {
    const body = await this.body(bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  /**
   * Lines of an object from byte `start`, streamed, each with the byte and line of the file it
   * starts at (so reading can resume there); `\r\n` and a leading byte-order mark are handled.
   */
  private async *lines(
    bucket: string,
    key: string,
    etag?: string,
    start: { byte: number; fileLine: number } = { byte: 0, fileLine: 1 },
  ): AsyncIterable<Line> {
    const body = await this.body(bucket, key, etag, start.byte);
    let byte = start.byte;
    let fileLine = start.fileLine;
    let rest: Buffer | undefined;
    const line = (buffer: Buffer, from: number, end: number): Line => {
      let stop = end;
      if (stop > from && buffer[stop - 1] === 13) stop--;
      let text = buffer.toString('utf8', from, stop);
      if (byte === 0) text = text.replace(/^\uFEFF/, '');
      const out = { text, byte, fileLine };
      byte += end - from + 1;
      fileLine++;
      return out;
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        const buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
        let from = 0;
        for (let nl = buffer.indexOf(10); nl !== -1; nl = buffer.indexOf(10, from)) {
          yield line(buffer, from, nl);
          from = nl + 1;
        }
        rest = from < buffer.length ? buffer.subarray(from) : undefined;
      }
      if (rest) yield line(rest, 0, rest.length);
    } finally {
      // A reader that stops early (a plan slice, the CSV header) would otherwise leave the body
      // flowing: the rest of the file downloaded for nothing.
      body.destroy();
    }
  }
}

/** JSON Lines: one JSON value per line; blank lines are not rows; a line that is not JSON fails alone. */
async function* jsonLines(lines: AsyncIterable<Line>): AsyncIterable<Row> {
  for await (const { text, byte, fileLine } of lines) {
    if (text.trim() === '') continue;
    const at = { byte, fileLine };
    try {
      yield { input: JSON.parse(text), at };
    } catch (error) {
      yield { invalid: `line ${fileLine} of the file is not JSON: ${(error as Error).message.slice(0, 200)}`, at };
    }
  }
}

/**
 * CSV records, each cut out by its quotes (a quoted field may hold line breaks): its text and
 * where it starts, or why it cannot be cut (a quote never closed).
 */
async function* csvRecords(
  lines: AsyncIterable<Line>,
): AsyncIterable<{ text: string; at: { byte: number; fileLine: number }; unclosed?: true }> {
  let record = '';
  let quotes = 0;
  let at = { byte: 0, fileLine: 0 };
  for await (const line of lines) {
    if (record === '' && line.text.trim() === '') continue;
    if (record === '') at = { byte: line.byte, fileLine: line.fileLine };
    record = record === '' ? line.text : `${record}\n${line.text}`;
    quotes += countQuotes(line.text);
    if (quotes % 2 === 1 && record.length < MAX_CSV_RECORD_CHARS) continue;
    const text = record;
    const unclosed = quotes % 2 === 1;
    record = '';
    quotes = 0;
    yield unclosed ? { text, at, unclosed } : { text, at };
  }
  if (record !== '') yield { text: record, at, unclosed: true };
}

/** The header of a CSV file (its first record): field names, or why it cannot be read. */
async function csvHeader(lines: AsyncIterable<Line>): Promise<string[] | string> {
  for await (const record of csvRecords(lines)) {
    return record.unclosed ? 'a quoted field is never closed' : splitRecord(record.text);
  }
  return 'the file is empty';
}

/**
 * CSV with a header row (field names). Each record is cut out by its quotes and parsed on its own
 * by csv-parse, so a ragged or badly quoted record fails alone — with its reason — and the rows
 * after it are read as usual. Records without any quote are split on commas directly (RFC 4180
 * gives them no other reading), which keeps 1M rows fast. `header`: already read (a resumed read).
 */
async function* csvRows(lines: AsyncIterable<Line>, header?: string[] | string): AsyncIterable<Row> {
  let names = header;
  for await (const { text, at, unclosed } of csvRecords(lines)) {
    if (names === undefined) {
      names = unclosed ? 'a quoted field is never closed' : splitRecord(text);
      if (typeof names === 'string') {
        yield { invalid: `CSV header: ${names}`, at };
        return;
      }
      continue;
    }
    if (typeof names === 'string') return;
    if (unclosed) {
      yield { invalid: `CSV record at line ${at.fileLine}: a quoted field is never closed`, at };
      continue;
    }
    const fields = splitRecord(text);
    if (typeof fields === 'string') {
      yield { invalid: `CSV record at line ${at.fileLine}: ${fields}`, at };
    } else if (fields.length !== names.length) {
      yield {
        invalid: `CSV record at line ${at.fileLine} has ${fields.length} field(s); the header has ${names.length}`,
        at,
      };
    } else {
      const row: Record<string, string> = {};
      names.forEach((name, i) => {
        row[name] = fields[i] as string;
      });
      yield { input: row, at };
    }
  }
}

function countQuotes(line: string): number {
  let count = 0;
  for (let i = line.indexOf('"'); i !== -1; i = line.indexOf('"', i + 1)) count++;
  return count;
}

/** The fields of one record, or why it cannot be read. */
function splitRecord(text: string): string[] | string {
  if (!text.includes('"')) return text.split(',');
  try {
    const records = parseCsv(text, { relax_column_count: true }) as string[][];
    if (records.length !== 1) return 'not exactly one record';
    return records[0] as string[];
  } catch (error) {
    return (error as Error).message.replace(/\s+/g, ' ').slice(0, 300);
  }
}
