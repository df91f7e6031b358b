/**
 * A client's socket as the egress sees it, with a fast path: when Node has nothing queued on a
 * plain TCP socket, ring views go straight to write(2)/writev(2) and the kernel copies them
 * before the call returns. Node's stream path (WriteWrap, Writable state, the callback on the
 * next tick) cost ~0.1-0.2 CPU s per delivered GB on top of the syscall at 15 KB writes here
 * (bench/RESULTS.md); the kernel's own cost is the same either way.
 *
 *  D1 A direct write happens only while socket.writableLength is 0: nothing written through
 *     Node is still waiting, so bytes never overtake earlier ones (the response headers included).
 *  D2 The fd is used only while the socket is not destroyed: destroy() sets `destroyed` before
 *     it closes the handle, so a recycled fd number is never written to. (Asking the handle for
 *     its fd at every write cost ~1 % of the main thread: a call into C++.)
 *  D3 What the kernel did not take (a full socket buffer) is the caller's to send through
 *     write(): it queues behind nothing (D1) and completes by callback, as before.
 *  D4 TLS sockets never take the fast path: their bytes must go through the TLS layer.
 */
import { writeSync, writevSync } from 'node:fs';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Sink } from './egress';

type Handle = { fd?: number } | null | undefined;

export class SocketSink implements Sink {
  /** Absent when this socket cannot take direct writes (D4, no fd) or they are turned off. */
  readonly writeNow: ((a: Buffer, b: Buffer | null) => number) | undefined;

  private readonly fd: number;

  constructor(
    readonly socket: Socket,
    direct: boolean,
  ) {
    const fd = (socket as unknown as { _handle: Handle })._handle?.fd;
    this.fd = typeof fd === 'number' ? fd : -1;
    this.writeNow = direct && !(socket instanceof TLSSocket) && this.fd >= 0 && !socket.destroyed ? this.direct : undefined;
  }

  write(chunk: Buffer, cb: (err?: Error | null) => void): boolean {
    return this.socket.write(chunk, cb);
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  destroy(): void {
    this.socket.destroy();
  }

  end(): void {
    this.socket.end();
  }

  /** Bytes the kernel took now: 0 when it took none or D1 forbids it, -1 when the socket failed. */
  private readonly direct = (a: Buffer, b: Buffer | null): number => {
    const s = this.socket;
    if (s.writableLength !== 0 || s.destroyed) return 0; // D1, D2
    try {
      return b === null ? writeSync(this.fd, a) : writevSync(this.fd, [a, b]);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'EAGAIN' || code === 'EINTR' ? 0 : -1;
    }
  };
}
