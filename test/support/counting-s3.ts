import { Agent } from 'node:http';
import type { Socket } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';

/** An HTTP agent that remembers its connections, to see how much they downloaded. */
class CountingAgent extends Agent {
  private readonly opened: Socket[] = [];
  override createConnection(...args: Parameters<Agent['createConnection']>) {
    const socket = super.createConnection(...args) as Socket;
    this.opened.push(socket);
    return socket;
  }
  downloaded(): number {
    return this.opened.reduce((sum, socket) => sum + socket.bytesRead, 0);
  }
}

/**
 * An S3 client of the local cloud (configured as the system's own) whose connections count the
 * bytes they download: lets a test see how much of a file a reader really fetched.
 */
export function countingS3(): { s3: S3Client; downloaded: () => number } {
  const agent = new CountingAgent({ keepAlive: true });
  const s3 = new S3Client({
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { httpAgent: agent },
  });
  return { s3, downloaded: () => agent.downloaded() };
}
