import fs from 'node:fs';

/**
 * Thin promise wrappers over the callback fs API on raw file descriptors. The receive path
 * makes several of these calls per object; FileHandle's extra promise and handle bookkeeping
 * showed up in profiles (~0.1 ms per object), these do not.
 */
export function openFd(path: string, flags: string, mode = 0o640): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function writevFd(fd: number, bufs: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.writev(fd, bufs, position, (err, n) => (err ? reject(err) : resolve(n))));
}

export function writeFd(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

export function readFd(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}
