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
import {
  ASSEMBLED_FILES,
  assembledFormat,
  assembledLines,
  DEFAULT_READ_LIMITS,
  outcomesText,
  parseOutcomes,
  type ReadLimits,
  readRows,
  rowsText,
} from '../core/batches/formats.js';
import type { BatchOutput, BatchPart, RowOutcome } from '../core/batches/model.js';
import { AssemblyLostError, InputChangedError, InputMissingError } from '../core/errors.js';
import type { AssemblingFile, AssemblingFiles, BatchFiles, InputRow, RowCursor } from '../core/ports.js';

/** What an output gathers before it goes up as one part (S3: every part but the last ≥ 5 MiB). */
const PART_BYTES = 8 * 1024 * 1024;

/**
 * A batch's files on S3. Inputs and outputs are streamed, so memory follows the chunk size, not
 * the batch size: input files are read line by line, and outputs are written as multipart uploads
 * fed as the rows go by — uploads that outlive one finalize step, so a batch of any size is
 * assembled in steps that each finish in time.
 */
export class S3BatchFiles implements BatchFiles {
  private readonly limits: ReadLimits;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    limits: Partial<ReadLimits> = {},
  ) {
    this.limits = { ...DEFAULT_READ_LIMITS, ...limits };
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.put(key, JSON.stringify(value), 'application/json');
  }

  async getJson(key: string): Promise<unknown> {
    return JSON.parse(await this.text(this.bucket, key));
  }

  async putRows(key: string, rows: readonly unknown[]): Promise<void> {
    await this.put(key, rowsText(rows), 'application/x-ndjson');
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    return (await this.head(bucket, key)) !== undefined;
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

  rows(parts: readonly BatchPart[], from?: RowCursor): AsyncIterable<InputRow> {
    return readRows(parts, (part, byte) => this.chunks(part, byte), this.limits, from);
  }

  async putOutcomes(key: string, outcomes: readonly RowOutcome[]): Promise<void> {
    await this.put(key, outcomesText(outcomes), 'application/x-ndjson');
  }

  async getOutcomes(key: string): Promise<RowOutcome[]> {
    return parseOutcomes(await this.text(this.bucket, key));
  }

  async assemble(prefix: string, outcomes: AsyncIterable<RowOutcome>, from: AssemblingFiles): Promise<AssemblingFiles> {
    const files = structuredClone(from);
    const file = (name: string): AssemblingFile => {
      if (files[name] === undefined) {
        const { extension, contentType } = assembledFormat(name);
        files[name] = { key: `${prefix}${name}.${extension}`, contentType, parts: [], bytes: 0, lines: 0, tail: '' };
      }
      return files[name];
    };
    for (const name of ASSEMBLED_FILES) file(name);
    const write = async (out: AssemblingFile, line: string) => {
      out.tail += line;
      out.bytes += Buffer.byteLength(line);
      out.lines++;
      // Characters never outnumber bytes: a tail this long is at least a part.
      if (out.tail.length >= PART_BYTES) await this.uploadPart(out);
    };
    for await (const row of outcomes) for (const [name, line] of assembledLines(row)) await write(file(name), line);
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
   * A part's bytes from `start`, as they come: its own bucket and pinned version for a file, ours
   * for rows the API stored.
   */
  private chunks(part: BatchPart, start: number): AsyncIterable<Uint8Array> {
    return part.kind === 'rows'
      ? this.download(this.bucket, part.key, undefined, start)
      : this.download(part.bucket, part.key, part.etag, start);
  }

  private async *download(bucket: string, key: string, etag: string | undefined, start: number) {
    const body = await this.body(bucket, key, etag, start);
    try {
      yield* body as AsyncIterable<Buffer>;
    } finally {
      // A reader that stops early (a plan slice, the CSV header) would otherwise leave the body
      // flowing: the rest of the file downloaded for nothing.
      body.destroy();
    }
  }
}
