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
 * The job id an owner's idempotency key maps to. Deriving it, rather than storing a key → id item,
 * makes "create unless it exists" one conditional write on the job itself. Keys are scoped per
 * owner: two owners using the same key get two jobs, and neither can reach the other's by replaying.
 */
export function jobIdForKey(owner: string, key: string): string {
  return `k${base32(createHash('sha256').update(owner).update('\0').update(key).digest(), 26)}`;
}

export function taskId(jobId: string, index: number): string {
  return `${jobId}.${index}`;
}

/** An array or object being written: its members in order, their keys (objects), what is written so far. */
interface Open {
  members: unknown[];
  keys: string[] | undefined;
  parts: string[];
}

/** A scalar's text, or a container to open. */
function open(value: unknown): Open | string {
  if (Array.isArray(value)) return { members: value, keys: undefined, parts: [] };
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { members: entries.map(([, v]) => v), keys: entries.map(([k]) => JSON.stringify(k)), parts: [] };
  }
  return JSON.stringify(value ?? null);
}

/**
 * JSON with sorted keys, so equal requests hash equally whatever their key order. Built with a
 * stack of its own rather than recursion, so no nesting overflows it; it writes exactly what the
 * recursive form did (a stored job's request hash must still match its replay), about as fast.
 */
export function canonicalJson(value: unknown): string {
  const root = open(value);
  if (typeof root === 'string') return root;
  const stack: Open[] = [root];
  for (;;) {
    const top = stack[stack.length - 1] as Open;
    const index = top.parts.length;
    if (index < top.members.length) {
      const member = open(top.members[index]);
      if (typeof member !== 'string') stack.push(member);
      else top.parts.push(top.keys ? `${top.keys[index]}:${member}` : member);
      continue;
    }
    stack.pop();
    const text = top.keys ? `{${top.parts.join(',')}}` : `[${top.parts.join(',')}]`;
    const parent = stack[stack.length - 1];
    if (!parent) return text;
    const at = parent.parts.length;
    parent.parts.push(parent.keys ? `${parent.keys[at]}:${text}` : text);
  }
}

export function requestHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}

/** A task message's ticket: 50 random bits, enough that a replay's never equals the first's. */
export function newTicket(): string {
  return base32(randomBytes(7), 10);
}
