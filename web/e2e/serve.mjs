#!/usr/bin/env node
// A tiny static file server for the built page (node's http module only, no framework).
//
//   node web/e2e/serve.mjs                          # serves web/dist at http://127.0.0.1:8000/
//   node web/e2e/serve.mjs --port 0 --root web/dist --mount /fixture-weights=tests/fixtures/tiny-weights
//
// --root DIR           the folder served at / (default: web/dist beside this folder)
// --mount /PREFIX=DIR  also serve DIR at /PREFIX/ (repeatable; the longest prefix wins)
// --port N             0 picks a free port (default 8000)
// --host H             default 127.0.0.1
// It prints one line `serving ROOT at URL` once listening (scripts read the URL from it).
// Only GET and HEAD; directories serve their index.html; anything else is 404; a path that
// leaves its folder (.., encoded slashes, symlinks pointing outside) is refused with 403.
import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_ROOT = path.resolve(here, '..', 'dist');

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.safetensors': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.map': 'application/json',
};

function mimeOf(file) {
  return MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Normalises mount prefixes ("/x/" -> "/x") and resolves folders; longest prefix first. */
function normaliseMounts(mounts) {
  return Object.entries(mounts ?? {})
    .map(([prefix, dir]) => {
      let p = '/' + prefix.replace(/^\/+|\/+$/g, '');
      if (p === '/') throw new Error(`mount prefix must not be "/": use --root (${prefix})`);
      return { prefix: p, dir: path.resolve(dir) };
    })
    .sort((x, y) => y.prefix.length - x.prefix.length);
}

/** Maps a decoded URL path to { dir, rel } (folder and path inside it). */
function route(urlPath, root, mounts) {
  for (const m of mounts) {
    if (urlPath === m.prefix || urlPath.startsWith(m.prefix + '/')) {
      return { dir: m.dir, rel: urlPath.slice(m.prefix.length) };
    }
  }
  return { dir: root, rel: urlPath };
}

function inside(dir, file) {
  const r = path.relative(dir, file);
  return r === '' || (!r.startsWith('..') && !path.isAbsolute(r));
}

/**
 * Starts the server. Returns { server, url, port, close() }.
 * options: root (folder served at /), mounts ({ '/prefix': folder }), port (0 = free), host,
 * log (function called with one line per request, or null), gzip (compress every response for a
 * client that accepts it, as a production server would: the benchmark's throttled loads).
 */
export async function startServer({ root = DEFAULT_ROOT, mounts = {}, port = 0, host = '127.0.0.1', log = null, gzip = false } = {}) {
  root = path.resolve(root);
  const mountList = normaliseMounts(mounts);

  const server = http.createServer(async (req, res) => {
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
      if (log) log(`${status} ${req.method} ${req.url}`);
    };
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      }
      const rawPath = (req.url ?? '/').split('?')[0].split('#')[0];
      // Encoded separators and NULs never name a file here: refuse rather than guess.
      if (/%2f|%5c|%00/i.test(rawPath)) return send(403, 'forbidden\n');
      let urlPath;
      try {
        urlPath = decodeURIComponent(rawPath);
      } catch {
        return send(400, 'bad request\n');
      }
      if (urlPath.includes('\0') || urlPath.includes('\\')) return send(403, 'forbidden\n');
      if (urlPath.split('/').some((seg) => seg === '..')) return send(403, 'forbidden\n');

      const { dir, rel } = route(urlPath, root, mountList);
      let file = path.join(dir, rel);
      if (!inside(dir, file)) return send(403, 'forbidden\n');

      let stat;
      try {
        stat = await fsp.stat(file);
        if (stat.isDirectory()) {
          if (!urlPath.endsWith('/')) {
            // Relative URLs on the page (weights/, app.js) need the trailing slash.
            return send(301, 'moved\n', { Location: rawPath + '/' + (req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '') });
          }
          file = path.join(file, 'index.html');
          stat = await fsp.stat(file);
        }
      } catch {
        return send(404, 'not found\n');
      }
      if (!stat.isFile()) return send(404, 'not found\n');
      // A symlink inside the folder must not lead outside it.
      const [realDir, realFile] = await Promise.all([fsp.realpath(dir), fsp.realpath(file)]);
      if (!inside(realDir, realFile)) return send(403, 'forbidden\n');

      const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
      const headers = {
        'Content-Type': mimeOf(file),
        'Content-Length': String(stat.size),
        'Cache-Control': 'no-cache',
        ETag: etag,
        'Last-Modified': stat.mtime.toUTCString(),
      };
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { ETag: etag, 'Cache-Control': 'no-cache' });
        res.end();
        if (log) log(`304 ${req.method} ${req.url}`);
        return;
      }
      if (gzip && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
        const body = zlib.gzipSync(await fsp.readFile(file));
        res.writeHead(200, { ...headers, 'Content-Encoding': 'gzip', 'Content-Length': String(body.length), Vary: 'Accept-Encoding' });
        res.end(req.method === 'HEAD' ? undefined : body);
        if (log) log(`200 ${req.method} ${req.url} (gzip)`);
        return;
      }
      res.writeHead(200, headers);
      if (req.method === 'HEAD') {
        res.end();
      } else {
        const stream = fs.createReadStream(file);
        stream.on('error', () => res.destroy());
        stream.pipe(res);
      }
      if (log) log(`200 ${req.method} ${req.url}`);
    } catch (err) {
      if (!res.headersSent) send(500, `internal error: ${err.message}\n`);
      else res.destroy();
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${actualPort}/`;
  return {
    server,
    url,
    port: actualPort,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

function usage(code) {
  const text = `usage: node serve.mjs [--root DIR | DIR] [--mount /PREFIX=DIR]... [--port N] [--host H] [--quiet]
  serves DIR (default ${path.relative(process.cwd(), DEFAULT_ROOT) || '.'}) at /, each mount at /PREFIX/; --port 0 picks a free port`;
  (code ? console.error : console.log)(text);
  process.exit(code);
}

async function main(argv) {
  let root = DEFAULT_ROOT;
  let port = 8000;
  let host = '127.0.0.1';
  let quiet = false;
  const mounts = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(2);
      return v;
    };
    if (arg === '--root') root = value();
    else if (arg === '--port') port = Number(value());
    else if (arg === '--host') host = value();
    else if (arg === '--quiet') quiet = true;
    else if (arg === '--mount') {
      const spec = value();
      const eq = spec.indexOf('=');
      if (eq <= 0) usage(2);
      mounts[spec.slice(0, eq)] = spec.slice(eq + 1);
    } else if (arg === '-h' || arg === '--help') usage(0);
    else if (!arg.startsWith('-')) root = arg;
    else usage(2);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(2);
  for (const dir of [root, ...Object.values(mounts)]) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      console.error(`serve.mjs: not a folder: ${dir}`);
      process.exit(1);
    }
  }
  const s = await startServer({ root, mounts, port, host, log: quiet ? null : (line) => console.error(line) });
  console.log(`serving ${path.resolve(root)} at ${s.url}`);
  for (const [prefix, dir] of Object.entries(mounts)) console.log(`  ${prefix.replace(/\/*$/, '/')} -> ${path.resolve(dir)}`);
  const stop = () => s.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`serve.mjs: ${err.message}`);
    process.exit(1);
  });
}
