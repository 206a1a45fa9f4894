/**
 * Baseline server for the `/authz` benchmark: a Koa 3 app with no fedgate
 * code whose only handler answers `GET /authz` with 200, an empty body and
 * one header copied from the request (so it reads request headers, as a
 * real check must). What fedgate's `/authz` costs beyond this is the price
 * of its decision: token verification, policy and identity headers.
 * Run by bench/authz-http.ts in its own process; reports its port over IPC.
 */
import { createServer } from 'node:http';
import Koa from 'koa';
import { serveUnderBench } from '../lib/ipc.ts';

const app = new Koa();
app.use((ctx) => {
  if (ctx.method !== 'GET' || ctx.path !== '/authz') return; // Koa answers 404
  ctx.status = 200;
  ctx.set('X-Original-URI', ctx.get('X-Original-URI'));
  ctx.body = '';
  // As fedgate's /authz does: an empty 200 has no content type.
  ctx.remove('Content-Type');
});

// The same node:http options as fedgate's listen() (src/app.ts), so the HTTP layer costs the same.
const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, app.callback());
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
serveUnderBench(server, async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
