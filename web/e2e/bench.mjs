#!/usr/bin/env node
// Browser benchmark of the page, for each engine it offers (?engine=webgpu and ?engine=reference):
//  - page weight: the bytes of every response while loading (wasm, js, weights, ...), cold cache,
//    and those received before the first answer showed, raw and as gzip -9 would send them;
//  - time to first answer: navigation start to #answer[data-state=done] for ?a=&b=&animate=0
//    (and to #status[data-state=ready], the weights loaded), median of --runs cold loads;
//  - per-problem time: the page's own "test it here" run (#test-n, #test-run, #test-result);
//  - a first visit: the plain address (no parameters, the engine the page picks itself), navigation
//    start to a right answer on screen (the page's goal: within 3 s), median of --runs cold loads.
// Prints a table and, with --out FILE, writes everything as JSON with the machine and the date.
//
//   node web/e2e/bench.mjs [--url URL] [--out FILE] [--runs 3] [--n 20] [--problem 347+285]
//                          [--weights PARAM] [--stage ID] [--engines webgpu,reference]
//                          [--throttle MBITS,MS]
// Without --url it serves web/dist itself (the fixture weights at /fixture-weights/).
// --throttle 10,40 also times cold loads over an emulated 10 Mbit/s link with 40 ms latency
// (Chromium's network emulation, DevTools protocol), from a server that gzips every response.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import zlib from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { server, launch, pageUrl, CHROMIUM, CHROMIUM_ARGS, TIMEOUT, FIXTURE, FIXTURE_MOUNT, DIST } from './harness.mjs';
import { startServer } from './serve.mjs';

function parseArgs(argv) {
  const o = { url: null, out: null, runs: 3, n: 20, problem: '347+285', weights: null, stage: null, engines: ['webgpu', 'reference'] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--url') o.url = v();
    else if (a === '--out') o.out = v();
    else if (a === '--runs') o.runs = Number(v());
    else if (a === '--n') o.n = Number(v());
    else if (a === '--problem') o.problem = v();
    else if (a === '--weights') o.weights = v();
    else if (a === '--stage') o.stage = v();
    else if (a === '--engines') o.engines = v().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--throttle') {
      const [mbits, ms] = v().split(',').map(Number);
      if (!(mbits > 0) || !(ms >= 0)) throw new Error('--throttle wants MBITS,MS, e.g. 10,40');
      o.throttle = { mbits, ms };
    }
    else if (a === '-h' || a === '--help') {
      console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).join('\n'));
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  if (!(o.runs >= 1) || !(o.n >= 1)) throw new Error('--runs and --n must be at least 1');
  if (!/^\d+\s*\+\s*\d+$/.test(o.problem)) throw new Error(`--problem must look like 347+285, not ${o.problem}`);
  return o;
}

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function machine() {
  return {
    uname: sh('uname', ['-a']),
    nproc: Number(sh('nproc', [])) || os.cpus().length,
    cpu: os.cpus()[0]?.model ?? null,
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    chromium: sh(CHROMIUM, ['--version'])?.split('\n').find((l) => /chrom/i.test(l)) ?? null,
    chromium_args: CHROMIUM_ARGS,
    node: process.version,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function category(url, contentType) {
  const p = new URL(url).pathname;
  if (p.endsWith('.wasm')) return 'wasm';
  if (p.endsWith('.safetensors')) return 'weights';
  if (p.endsWith('.js') || p.endsWith('.mjs')) return 'js';
  if (p.endsWith('.json')) return 'json';
  if (p.endsWith('.css')) return 'css';
  if (p.endsWith('.html') || p.endsWith('/') || /text\/html/.test(contentType ?? '')) return 'html';
  return 'other';
}

// Records (in the page, from the first byte of the document) when #status becomes ready and
// #answer becomes done, on performance.now()'s clock, which starts at the navigation.
const MARKS = () => {
  window.__bench = { ready: null, done: null, failed: null, playing: null };
  const check = () => {
    const s = document.querySelector('#status')?.getAttribute('data-state');
    const a = document.querySelector('#answer')?.getAttribute('data-state');
    const t = performance.now();
    if (s === 'ready' && window.__bench.ready === null) window.__bench.ready = t;
    if (s === 'failed' && window.__bench.failed === null) window.__bench.failed = t;
    if (a === 'done' && window.__bench.done === null) window.__bench.done = t;
    if (a === 'playing' && window.__bench.playing === null) window.__bench.playing = t;
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
};

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r1 = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);

/** One cold load (fresh context, empty cache): bytes by category and the timings; `throttle`
 * ({ mbits, ms }) emulates a slow link. */
async function coldLoad(browser, url, throttle = null) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  if (throttle) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: throttle.ms,
      downloadThroughput: (throttle.mbits * 1e6) / 8,
      uploadThroughput: (throttle.mbits * 1e6) / 8,
    });
  }
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  const pending = [];
  page.on('response', (res) => {
    pending.push(
      res
        .body()
        .then((b) => ({
          url: res.url(), status: res.status(), type: res.headers()['content-type'] ?? '', bytes: b.length,
          gzip_bytes: zlib.gzipSync(b, { level: 9 }).length,
        }))
        .catch(() => ({ url: res.url(), status: res.status(), type: res.headers()['content-type'] ?? '', bytes: 0, gzip_bytes: 0 })),
    );
  });
  await page.addInitScript(MARKS);
  await page.goto(url);
  await page.waitForFunction(() => window.__bench && (window.__bench.done !== null || window.__bench.failed !== null), null, {
    timeout: TIMEOUT,
    polling: 50,
  });
  const marks = await page.evaluate(() => window.__bench);
  if (marks.failed !== null) {
    const text = await page.textContent('#status');
    throw new Error(`loading failed: ${text?.trim()}`);
  }
  const engine = await page.getAttribute('#engine', 'data-engine');
  const adapter = await page.evaluate(async () => {
    if (!navigator.gpu) return null;
    const a = await navigator.gpu.requestAdapter();
    return a ? { vendor: a.info?.vendor ?? null, architecture: a.info?.architecture ?? null, fallback: a.isFallbackAdapter ?? null } : null;
  });
  // The stages that load behind the first answer, so the page weight counts all of them.
  await page.waitForFunction(() => /^Loaded (all|\d+ of)/.test(document.querySelector('#status')?.textContent ?? ''), null, {
    timeout: TIMEOUT,
    polling: 50,
  });
  // The URLs the page had received when the first answer showed (resource timing, on the clock
  // of the marks): what a visitor waits for.
  const received = await page.evaluate((done) => {
    const first = [performance.getEntriesByType('navigation')[0],
      ...performance.getEntriesByType('resource').filter((e) => e.responseEnd <= done)].filter(Boolean);
    // transferSize: headers and body as they came over the wire (compressed where the server
    // compressed), the figure a throttled link pays for.
    return { urls: [location.href, ...first.map((e) => e.name)], transferred: first.reduce((x, e) => x + (e.transferSize || 0), 0) };
  }, marks.done);
  const beforeAnswer = new Set(received.urls);
  const responses = (await Promise.all(pending)).map((r) => ({ ...r, before_answer: beforeAnswer.has(r.url) }));
  return { page, context, marks, engine, adapter, responses, errors, transferredBeforeAnswer: received.transferred };
}

async function testItHere(page, n) {
  await page.fill('#test-n', String(n));
  const t0 = Date.now();
  await page.click('#test-run');
  await page.waitForSelector('#test-result[data-state=done]', { timeout: Math.max(TIMEOUT, n * 5000), state: 'attached' });
  const wall = Date.now() - t0;
  const r = await page.$eval('#test-result', (e) => ({
    n: Number(e.getAttribute('data-n')),
    correct: Number(e.getAttribute('data-correct')),
    perSecond: Number(e.getAttribute('data-per-second')),
  }));
  return { ...r, wall_ms: wall, ms_per_problem_page: r.perSecond > 0 ? 1000 / r.perSecond : null, ms_per_problem_wall: wall / n };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const srv = o.url ? { url: o.url.replace(/\/*$/, '/'), close: async () => {} } : await server();
  const [a, b] = o.problem.split('+').map((s) => Number(s.trim()));
  let weightsParam = o.weights;
  if (weightsParam === null) {
    // The page's default folder when it is served, else the fixture.
    const res = await fetch(new URL('weights/manifest.json', srv.url)).catch(() => null);
    if (!res || !res.ok) {
      weightsParam = FIXTURE_MOUNT.slice(1) + '/';
      console.error(`bench: ${srv.url}weights/manifest.json is not served: using ?weights=${weightsParam}`);
    }
  }
  const manifestUrl = new URL(`${weightsParam ?? 'weights/'}manifest.json`, srv.url);
  const manifest = await (await fetch(manifestUrl)).json();

  const browser = await launch();
  const results = [];
  // A first visit: the plain address, nothing asked for.
  const visitUrl = weightsParam ? pageUrl(srv.url, { weights: weightsParam }) : srv.url;
  let firstVisit = null;
  try {
    for (const engine of o.engines) {
      const url = pageUrl(srv.url, { a, b, animate: 0, engine, weights: weightsParam, stage: o.stage });
      const loads = [];
      let last = null;
      for (let i = 0; i < o.runs; i++) {
        if (last) await last.context.close();
        last = await coldLoad(browser, url);
        loads.push(last);
      }
      const test = await testItHere(last.page, o.n);
      let throttled = null;
      if (o.throttle) {
        const slow = await startServer({ root: DIST, mounts: { [FIXTURE_MOUNT]: FIXTURE }, gzip: true });
        try {
          const slowUrl = pageUrl(slow.url, { a, b, animate: 0, engine, weights: weightsParam, stage: o.stage });
          const runs = [];
          for (let i = 0; i < o.runs; i++) {
            const l = await coldLoad(browser, slowUrl, o.throttle);
            runs.push({ first_answer_ms: r1(l.marks.done), transferred_before_answer: l.transferredBeforeAnswer });
            await l.context.close();
          }
          throttled = {
            link: `${o.throttle.mbits} Mbit/s, ${o.throttle.ms} ms latency, gzip`,
            first_answer_ms: r1(median(runs.map((x) => x.first_answer_ms))),
            transferred_before_answer: median(runs.map((x) => x.transferred_before_answer)),
            runs,
          };
        } finally {
          await slow.close();
        }
      }
      const bytes = {};
      for (const r of last.responses) bytes[category(r.url, r.type)] = (bytes[category(r.url, r.type)] ?? 0) + r.bytes;
      const total = Object.values(bytes).reduce((x, y) => x + y, 0);
      const first = last.responses.filter((r) => r.before_answer);
      const beforeAnswer = {
        bytes: first.reduce((x, r) => x + r.bytes, 0),
        gzip_bytes: first.reduce((x, r) => x + r.gzip_bytes, 0),
      };
      results.push({
        engine_requested: engine,
        engine_used: last.engine,
        adapter: last.adapter,
        url: url.slice(srv.url.length - 1),
        stage: o.stage ?? (await last.page.inputValue('#stage').catch(() => null)),
        page_weight_bytes: { ...bytes, total },
        // Received before the first answer showed; gzip -9 of each body (this server sends them
        // uncompressed), what a compressing server would transfer.
        before_first_answer: beforeAnswer,
        responses: last.responses.map((r) => ({
          path: new URL(r.url).pathname, status: r.status, bytes: r.bytes, gzip_bytes: r.gzip_bytes, before_answer: r.before_answer,
        })),
        first_answer_ms: { median: r1(median(loads.map((l) => l.marks.done))), runs: loads.map((l) => r1(l.marks.done)) },
        throttled,
        ready_ms: { median: r1(median(loads.map((l) => l.marks.ready ?? l.marks.done))), runs: loads.map((l) => r1(l.marks.ready)) },
        test_it_here: {
          n: test.n,
          correct: test.correct,
          per_second: test.perSecond,
          ms_per_problem: r1(test.ms_per_problem_page),
          ms_per_problem_wall: r1(test.ms_per_problem_wall),
          wall_ms: test.wall_ms,
        },
        page_errors: [...new Set(loads.flatMap((l) => l.errors))],
      });
      await last.context.close();
    }
    const visits = [];
    for (let i = 0; i < o.runs; i++) {
      const l = await coldLoad(browser, visitUrl);
      visits.push({
        answer_ms: r1(l.marks.done),
        correct: (await l.page.getAttribute('#answer', 'data-correct')) === 'true',
        held_for_animation: l.marks.playing !== null && l.marks.playing < l.marks.done,
        engine: l.engine,
      });
      await l.context.close();
    }
    firstVisit = { answer_ms: r1(median(visits.map((v) => v.answer_ms))), runs: visits, throttled: null };
    if (o.throttle) {
      const slow = await startServer({ root: DIST, mounts: { [FIXTURE_MOUNT]: FIXTURE }, gzip: true });
      try {
        const slowUrl = weightsParam ? pageUrl(slow.url, { weights: weightsParam }) : slow.url;
        const runs = [];
        for (let i = 0; i < o.runs; i++) {
          const l = await coldLoad(browser, slowUrl, o.throttle);
          runs.push(r1(l.marks.done));
          await l.context.close();
        }
        firstVisit.throttled = { link: `${o.throttle.mbits} Mbit/s, ${o.throttle.ms} ms latency, gzip`, answer_ms: r1(median(runs)), runs };
      } finally {
        await slow.close();
      }
    }
  } finally {
    await browser.close();
    await srv.close();
  }

  const report = {
    date: new Date().toISOString(),
    machine: machine(),
    problem: `${a} + ${b}`,
    weights: weightsParam ?? 'weights/ (page default)',
    model: manifest.model,
    runs: o.runs,
    results,
    first_visit: firstVisit,
  };

  const kib = (x) => (x === undefined ? '-' : (x / 1024).toFixed(1));
  const rows = [['engine', 'used', 'wasm KiB', 'js KiB', 'weights KiB', 'total KiB', 'before answer KiB (gzip)', 'ready ms', 'first answer ms', `ms/problem (n=${o.n})`, 'correct']];
  for (const r of results) {
    const w = r.page_weight_bytes;
    rows.push([
      r.engine_requested, r.engine_used ?? '?', kib(w.wasm), kib(w.js), kib(w.weights), kib(w.total),
      `${kib(r.before_first_answer.bytes)} (${kib(r.before_first_answer.gzip_bytes)})`,
      String(r.ready_ms.median), String(r.first_answer_ms.median),
      String(r.test_it_here.ms_per_problem ?? r.test_it_here.ms_per_problem_wall), `${r.test_it_here.correct}/${r.test_it_here.n}`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log(`${report.date}  ${report.machine.chromium}  nproc=${report.machine.nproc}  ${report.problem}  weights=${report.weights}  cold runs=${o.runs}`);
  for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i])).join('  '));
  for (const r of results) {
    if (r.throttled) {
      console.log(`${r.engine_requested}, throttled (${r.throttled.link}): first answer ${r.throttled.first_answer_ms} ms, `
        + `${kib(r.throttled.transferred_before_answer)} KiB transferred before it (median of ${r.throttled.runs.length})`);
    }
  }
  if (firstVisit) {
    const v = firstVisit.runs;
    console.log(`first visit (${visitUrl.slice(srv.url.length - 1)}, engine ${v[0]?.engine}): a ${v.every((x) => x.correct) ? 'right' : 'WRONG'} `
      + `answer at ${firstVisit.answer_ms} ms (median of ${v.length}: ${v.map((x) => x.answer_ms).join(', ')})`
      + `${v.some((x) => x.held_for_animation) ? ', held back for an animation' : ''}`);
    if (firstVisit.throttled) {
      console.log(`first visit, throttled (${firstVisit.throttled.link}): answer at ${firstVisit.throttled.answer_ms} ms `
        + `(${firstVisit.throttled.runs.join(', ')})`);
    }
  }
  for (const r of results) if (r.page_errors.length) console.log(`errors with ${r.engine_requested}: ${r.page_errors.join(' | ')}`);
  if (o.out) {
    fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    fs.writeFileSync(o.out, JSON.stringify(report, null, 2) + '\n');
    console.log(`wrote ${o.out}`);
  }
}

main().catch((err) => {
  console.error(`bench: ${err.stack ?? err}`);
  process.exit(1);
});
