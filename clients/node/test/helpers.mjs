// Test helpers: a real stile binary on a free loopback port with a throwaway data
// directory, and a local HTTP receiver. Every wait has a deadline.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The key every test server accepts. */
export const KEY = 'vk_test_node_client_0123456789abcdef';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The stile binary: `STILE_BIN`, else the workspace's debug build. */
export function stileBin() {
  return process.env.STILE_BIN || path.resolve(here, '../../../target/debug/stile');
}

/**
 * Starts `stile` on 127.0.0.1:0 with `KEY` and retries 100 ms apart; resolves to
 * `{ base, stop }` once it prints where it listens (10 s at most).
 */
export async function startStile(extraEnv = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'stile-node-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('STILE_')));
  Object.assign(env, {
    STILE_AUTH_KEYS: KEY,
    STILE_DELIVERY_RETRY_SCHEDULE: '100ms,200ms,300ms',
    RUST_LOG: 'warn',
    ...extraEnv,
  });
  const child = spawn(stileBin(), ['--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data')], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = [];
  child.stderr.on('data', (chunk) => stderr.push(chunk));
  const lines = readline.createInterface({ input: child.stdout });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stile did not start in 10 s: ${Buffer.concat(stderr)}`)), 10_000);
    child.on('exit', (code) => reject(new Error(`stile exited with ${code}: ${Buffer.concat(stderr)}`)));
    lines.on('line', (line) => {
      const match = line.trim().match(/^listening\s+(http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  lines.on('line', () => {}); // keep draining stdout
  return {
    base,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A local HTTP server answering with `handler(request, body)` (a Node request and its raw
 * body as a Buffer; returns `{ status, headers, body }`, default 200 `{}`); resolves to
 * `{ url, requests, waitFor, close }`.
 */
export async function startReceiver(handler = () => ({})) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      const answer = (await handler(req, body)) || {};
      res.writeHead(answer.status || 200, { 'content-type': 'application/json', ...(answer.headers || {}) });
      res.end(answer.body ?? '{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    requests,
    /** Resolves once `count` requests arrived (rejects after `ms`). */
    waitFor: (count, ms = 10_000) => until(() => requests.length >= count, ms, `${count} requests on ${url}`),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Resolves once `condition()` (sync or async) is truthy; rejects after `ms`. */
export async function until(condition, ms = 10_000, what = 'the condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
