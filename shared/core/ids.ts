import { createHash, randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function base32(bytes: Uint8Array, length: number): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < length) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

/** A new job id: time first (ids sort roughly by creation), then 80 random bits. */
export function newJobId(now: Date): string {
  const time = Buffer.alloc(6);
  time.writeUIntBE(now.getTime(), 0, 6);
  return `j${base32(Buffer.concat([time, randomBytes(10)]), 26)}`;
}

/**
 * The job id an idempotency key maps to. Deriving it, rather than storing a key → id item, makes
 * "create unless it exists" one conditional write on the job itself.
 */
export function jobIdForKey(key: string): string {
  return `k${base32(createHash('sha256').update(key).digest(), 26)}`;
}

export function taskId(jobId: string, index: number): string {
  return `${jobId}.${index}`;
}

/**
 * JSON with sorted keys, so equal requests hash equally whatever their key order. Written with a
 * work list rather than recursion: a request is hashed before anything else may refuse it, so no
 * nesting it holds may overflow the stack here. Its output is the one request hashes were always
 * made of (a stored job's hash must still match its replay).
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  // Each item is a value still to write, or (boxed) text to write as it is: commas, keys, closers.
  const todo: ({ text: string } | { value: unknown })[] = [{ value }];
  for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
    if ('text' in item) {
      out.push(item.text);
      continue;
    }
    const next = item.value;
    if (Array.isArray(next)) {
      out.push('[');
      todo.push({ text: ']' });
      for (let i = next.length - 1; i >= 0; i--) {
        todo.push({ value: next[i] });
        if (i > 0) todo.push({ text: ',' });
      }
    } else if (next && typeof next === 'object') {
      const entries = Object.entries(next as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      out.push('{');
      todo.push({ text: '}' });
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, v] = entries[i] as [string, unknown];
        todo.push({ value: v });
        todo.push({ text: `${i > 0 ? ',' : ''}${JSON.stringify(key)}:` });
      }
    } else {
      out.push(JSON.stringify(next ?? null));
    }
  }
  return out.join('');
}

export function requestHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}
