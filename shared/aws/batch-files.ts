import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { PassThrough, type Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  type S3Client,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { parse as parseCsv } from 'csv-parse/sync';
import type { BatchOutput, BatchPart, RowOutcome } from '../core/batch.js';
import { InputMissingError } from '../core/errors.js';
import type { BatchFiles } from '../core/ports.js';

/** A CSV record may span lines inside quotes, up to this many characters; past it the line fails alone. */
const MAX_CSV_RECORD_CHARS = 1024 * 1024;

type Row = { input?: unknown; invalid?: string };

/**
 * A batch's files on S3. Inputs and outputs are streamed, so memory follows the chunk size, not
 * the batch size: input files are read line by line, and outputs are written as multipart uploads
 * (`@aws-sdk/lib-storage`) fed as the rows go by.
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
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (error) {
      if (error instanceof NotFound || error instanceof NoSuchKey) return false;
      const status = (error as S3ServiceException).$metadata?.httpStatusCode;
      if (status === 403 || status === 404 || status === 301) return false;
      throw error;
    }
  }

  async *rows(parts: readonly BatchPart[]): AsyncIterable<Row> {
    for (const part of parts) {
      if (part.kind === 'rows') {
        for await (const line of this.lines(this.bucket, part.key)) {
          if (line !== '') yield { input: JSON.parse(line) };
        }
      } else if (part.format === 'csv') {
        yield* csvRows(this.lines(part.bucket, part.key));
      } else {
        yield* jsonLines(this.lines(part.bucket, part.key));
      }
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

  async assemble(prefix: string, outcomes: AsyncIterable<RowOutcome>): Promise<Record<string, BatchOutput>> {
    const files = new Map<string, OutputFile>();
    const file = (name: string, extension: string, type: string) => {
      let out = files.get(name);
      if (!out) {
        out = new OutputFile(this.s3, this.bucket, `${prefix}${name}.${extension}`, type);
        files.set(name, out);
      }
      return out;
    };
    const results = file('results', 'jsonl', 'application/x-ndjson');
    const errors = file('errors', 'jsonl', 'application/x-ndjson');
    try {
      for await (const row of outcomes) {
        const { outputs, ...shown } = row;
        const line = `${JSON.stringify(shown)}\n`;
        await results.write(line);
        if (row.status === 'FAILED') await errors.write(line);
        for (const [name, text] of Object.entries(outputs ?? {}))
          await file(name, 'txt', 'text/plain').write(`${text}\n`);
      }
    } catch (error) {
      await Promise.allSettled([...files.values()].map((f) => f.abort()));
      throw error;
    }
    const assembled: Record<string, BatchOutput> = {};
    for (const [name, out] of files) assembled[name] = await out.end();
    return assembled;
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
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  private async body(bucket: string, key: string): Promise<Readable> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return object.Body as Readable;
    } catch (error) {
      const status = (error as S3ServiceException).$metadata?.httpStatusCode;
      if (error instanceof NoSuchKey || status === 404 || status === 403) throw new InputMissingError(bucket, key);
      throw error;
    }
  }

  private async text(bucket: string, key: string): Promise<string> {
    const body = await this.body(bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Lines of an object, streamed; `\r\n` and a leading byte-order mark are handled. */
  private async *lines(bucket: string, key: string): AsyncIterable<string> {
    const body = await this.body(bucket, key);
    let first = true;
    try {
      for await (const line of createInterface({ input: body, crlfDelay: Number.POSITIVE_INFINITY })) {
        yield first ? line.replace(/^\uFEFF/, '') : line;
        first = false;
      }
    } finally {
      // A reader that stops early (a plan slice) would otherwise leave the body flowing: the rest of
      // the file downloaded for nothing (and, locally, a connection the S3 server waits on at stop).
      body.destroy();
    }
  }
}

/** JSON Lines: one JSON value per line; blank lines are not rows; a line that is not JSON fails alone. */
async function* jsonLines(lines: AsyncIterable<string>): AsyncIterable<Row> {
  let number = 0;
  for await (const line of lines) {
    number++;
    if (line.trim() === '') continue;
    try {
      yield { input: JSON.parse(line) };
    } catch (error) {
      yield { invalid: `line ${number} of the file is not JSON: ${(error as Error).message.slice(0, 200)}` };
    }
  }
}

/**
 * CSV with a header row (field names). Each record is cut out by its quotes (a quoted field may
 * hold line breaks) and parsed on its own by csv-parse, so a ragged or badly quoted record fails
 * alone — with its reason — and the rows after it are read as usual. Records without any quote
 * are split on commas directly (RFC 4180 gives them no other reading), which keeps 1M rows fast.
 */
async function* csvRows(lines: AsyncIterable<string>): AsyncIterable<Row> {
  let header: string[] | undefined;
  let record = '';
  let quotes = 0;
  let startLine = 0;
  let number = 0;
  for await (const line of lines) {
    number++;
    if (record === '' && line.trim() === '') continue;
    if (record === '') startLine = number;
    record = record === '' ? line : `${record}\n${line}`;
    quotes += countQuotes(line);
    if (quotes % 2 === 1 && record.length < MAX_CSV_RECORD_CHARS) continue;
    const text = record;
    const unbalanced = quotes % 2 === 1;
    record = '';
    quotes = 0;
    if (unbalanced) {
      yield { invalid: `CSV record at line ${startLine}: a quoted field is never closed` };
      continue;
    }
    const fields = splitRecord(text);
    if (!header) {
      if (typeof fields === 'string') {
        yield { invalid: `CSV header: ${fields}` };
        return;
      }
      header = fields;
      continue;
    }
    if (typeof fields === 'string') {
      yield { invalid: `CSV record at line ${startLine}: ${fields}` };
    } else if (fields.length !== header.length) {
      yield {
        invalid: `CSV record at line ${startLine} has ${fields.length} field(s); the header has ${header.length}`,
      };
    } else {
      const row: Record<string, string> = {};
      header.forEach((name, i) => {
        row[name] = fields[i] as string;
      });
      yield { input: row };
    }
  }
  if (record !== '') yield { invalid: `CSV record at line ${startLine}: a quoted field is never closed` };
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

/** One output file as a multipart upload fed line by line (parts of 5 MB: memory stays bounded). */
class OutputFile {
  private readonly stream = new PassThrough();
  private readonly upload: Upload;
  private readonly done: Promise<unknown>;
  private bytes = 0;
  private lines = 0;

  constructor(
    s3: S3Client,
    bucket: string,
    private readonly key: string,
    contentType: string,
  ) {
    this.upload = new Upload({
      client: s3,
      params: { Bucket: bucket, Key: key, Body: this.stream, ContentType: contentType },
      queueSize: 2,
      partSize: 5 * 1024 * 1024,
    });
    this.done = this.upload.done();
    // Surfaced by `end()`; a rejection before then must not go unhandled.
    this.done.catch(() => undefined);
  }

  async write(line: string): Promise<void> {
    this.bytes += Buffer.byteLength(line);
    this.lines++;
    if (!this.stream.write(line)) await once(this.stream, 'drain');
  }

  async end(): Promise<BatchOutput> {
    this.stream.end();
    await this.done;
    return { key: this.key, bytes: this.bytes, lines: this.lines };
  }

  async abort(): Promise<void> {
    this.stream.destroy();
    await this.upload.abort().catch(() => undefined);
  }
}
