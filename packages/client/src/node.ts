import { openAsBlob } from 'node:fs';

/**
 * A file on disk as `upload()` data: a Blob backed by the file, read as it is sent (never whole
 * into memory), its size known up front as S3 requires.
 */
export function fileData(path: string): Promise<Blob> {
  return openAsBlob(path);
}
