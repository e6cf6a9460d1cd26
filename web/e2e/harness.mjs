// Shared pieces of the end-to-end tests and the benchmark: paths, the server, the browser,
// the `coconut solve` oracle, seeded problems, and reading the page's contract elements.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';
import { startServer } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
/** The built page (web/dist); E2E_DIST overrides. */
export const DIST = path.resolve(process.env.E2E_DIST ?? path.join(REPO, 'web', 'dist'));
/** The fixture weights, served at /fixture-weights/. */
export const FIXTURE = path.join(REPO, 'tests', 'fixtures', 'tiny-weights');
export const FIXTURE_MOUNT = '/fixture-weights';
export const COCONUT = process.env.COCONUT ?? path.join(REPO, 'target', 'release', 'coconut');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
/** How long one wait on the page may take (ms): loading weights, one solve. */
export const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 90_000);
/** How long a click or a read may wait for its element (ms). */
export const ACTION_TIMEOUT = Number(process.env.E2E_ACTION_TIMEOUT_MS ?? 10_000);
export const TOKEN_KINDS = ['question', 'bot', 'thought', 'step', 'eot', 'answer', 'eos', 'pause'];

/**
 * The server the tests use: E2E_BASE_URL when the runner script started one (it must serve
 * DIST at / and the fixture at /fixture-weights/), else one started here on a free port.
 */
export async function server(extraMounts = {}) {
  if (process.env.E2E_BASE_URL && Object.keys(extraMounts).length === 0) {
    const url = process.env.E2E_BASE_URL.replace(/\/*$/, '/');
    return { url, close: async () => {} };
  }
  if (!fs.existsSync(path.join(DIST, 'index.html'))) {
    throw new Error(`${DIST}/index.html is missing: build the page first (scripts/web-test.sh does)`);
  }
  return startServer({ root: DIST, mounts: { [FIXTURE_MOUNT]: FIXTURE, ...extraMounts } });
}

/**
 * Starts the server and the browser (and with `withPage`, one page session) before a test
 * file's tests and stops them after them; returns the object whose `srv` and `browser` (and
 * `session`, `page`) are set once they run, and then calls `onReady` with it.
 */
export function serverAndBrowser({ withPage = false, onReady = () => {} } = {}) {
  const env = {};
  before(async () => {
    env.srv = await server();
    env.browser = await launch();
    if (withPage) {
      env.session = await openPage(env.browser);
      env.page = env.session.page;
    }
    onReady(env);
  });
  after(async () => {
    await env.session?.close();
    await env.browser?.close();
    await env.srv?.close();
  });
  return env;
}

/** Headless Debian Chromium with WebGPU (SwiftShader) and the offline flags. */
export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A new page (in its own context) that records uncaught page errors, console errors and crashes.
 * `problems(opts)` lists them; opts.allowFailedLoads lets failed resource loads (404) through,
 * opts.allowConsole every console error but panics (for the tests that break the weights).
 */
export async function openPage(browser, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  // Clicks and reads of elements fail fast (a missing element is a finding, not a wait);
  // navigation and the waits for loading and solving get TIMEOUT.
  page.setDefaultTimeout(ACTION_TIMEOUT);
  page.setDefaultNavigationTimeout(TIMEOUT);
  const log = [];
  page.on('pageerror', (err) => log.push({ kind: 'pageerror', text: `${err.name}: ${err.message}`, url: page.url() }));
  page.on('crash', () => log.push({ kind: 'crash', text: 'the page crashed', url: page.url() }));
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const loc = msg.location();
      log.push({ kind: 'console', text: msg.text(), url: loc?.url ? `${loc.url}:${loc.lineNumber}` : page.url() });
    }
  });
  // allowConsole: console errors are let through unless they show a Rust panic or a wasm trap
  // (for the tests that make loading fail on purpose, where logging the failure is fair).
  const problems = ({ allowFailedLoads = false, allowConsole = false } = {}) =>
    log.filter((e) => {
      if (e.kind !== 'console') return true;
      if (allowFailedLoads && /^Failed to load resource/.test(e.text)) return false;
      if (allowConsole && !/panicked|RuntimeError|unreachable/i.test(e.text)) return false;
      return true;
    });
  return {
    page,
    context,
    log,
    problems,
    /**
     * Fails with the page errors / console errors recorded since the last call (test 3 of the
     * brief), so that each test answers for its own.
     */
    assertClean(opts) {
      const found = problems(opts).filter((e) => !e.reported);
      for (const e of log) e.reported = true;
      assert.deepEqual(
        found.map((e) => `${e.kind}: ${e.text} (${e.url})`),
        [],
        'the page reported errors (uncaught exceptions or console.error)',
      );
    },
    close: () => context.close(),
  };
}

/**
 * The page URL with these query parameters (values undefined/null are left out), spaces as %20:
 * the page reads `+` as a plus, as people type it (web/js/address.js).
 */
export function pageUrl(base, params = {}) {
  const u = new URL(base);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) u.searchParams.set(k, String(v));
  u.search = u.searchParams.toString().replace(/\+/g, '%20');
  return u.href;
}

/** The page URL with a query string exactly as a person would type it in the address bar. */
export function typedUrl(base, query) {
  return `${new URL(base).href.replace(/[?#].*$/, '')}?${query}`;
}

/** The address's parameters as the page reads them: `+` is a plus, %XX decoded. */
export function pageParams(url) {
  const out = {};
  for (const part of new URL(url).search.replace(/^\?/, '').split('&').filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    if (!(key in out)) out[key] = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
  }
  return out;
}

export function readManifest(dir) {
  return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
}

/**
 * `coconut solve --json` on a weights folder: returns a Map from "a + b" to its object
 * ({answer, text, stage, thoughts, input} or {error, input}).
 */
export function solveCli(weightsDir, stage, problems) {
  const input = problems.map(([a, b]) => `${a} + ${b}`).join('\n') + '\n';
  const r = spawnSync(COCONUT, ['solve', '--weights', weightsDir, '--stage', stage, '--json'], {
    input,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.error) throw new Error(`cannot run ${COCONUT}: ${r.error.message} (build it: cargo build --release -p coconut)`);
  const out = new Map();
  for (const line of r.stdout.split('\n').filter((l) => l.trim())) {
    const obj = JSON.parse(line);
    out.set(obj.input, obj);
  }
  if (out.size !== problems.length) {
    throw new Error(`coconut solve gave ${out.size} results for ${problems.length} problems (exit ${r.status}): ${r.stderr}`);
  }
  return out;
}

/** `coconut intervene --json` on one problem: {answer, edited_answer, text, edited_text, ...}. */
export function interveneCli(weightsDir, stage, patches, a, b) {
  const args = ['intervene', '--weights', weightsDir, '--stage', stage, '--json'];
  for (const p of patches) args.push('--patch', p);
  const r = spawnSync(COCONUT, [...args, `${a} + ${b}`], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${COCONUT}: ${r.error.message} (build it: cargo build --release -p coconut)`);
  if (r.status !== 0) throw new Error(`coconut intervene exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** `coconut intervene --measure N` (kind `patching`) or `--measure-flips N` (`flips`) on one stage: its JSON rows. */
export function measureCli(weightsDir, stage, kind, n) {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'measure-')), 'effects.json');
  const flag = kind === 'patching' ? '--measure' : '--measure-flips';
  const args = ['intervene', '--weights', weightsDir, '--stage', stage, flag, String(n), '--measure-json', out];
  const r = spawnSync(COCONUT, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${COCONUT}: ${r.error.message} (build it: cargo build --release -p coconut)`);
  if (r.status !== 0) throw new Error(`coconut intervene exited ${r.status}: ${r.stderr}`);
  return JSON.parse(fs.readFileSync(out, 'utf8'));
}

/** mulberry32: a small seeded generator, so the problems are the same on every run. */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * n problems with operands of 1..maxDigits digits (digit count uniform, then the value), the
 * first two always the edge cases (10^max - 1) + 1 and 0 + 0.
 */
export function makeProblems(n, maxDigits, seed = 20261128) {
  const rand = rng(seed);
  const operand = () => {
    const d = 1 + Math.floor(rand() * maxDigits);
    const lo = d === 1 ? 0 : 10 ** (d - 1);
    return lo + Math.floor(rand() * (10 ** d - lo));
  };
  const list = [[10 ** maxDigits - 1, 1], [0, 0]];
  const seen = new Set(list.map((p) => p.join('+')));
  while (list.length < n) {
    const p = [operand(), operand()];
    if (!seen.has(p.join('+'))) {
      seen.add(p.join('+'));
      list.push(p);
    }
  }
  return list.slice(0, n);
}

/** What the page shows for the current problem. */
export async function readAnswer(page) {
  return page.evaluate(() => {
    const el = document.querySelector('#answer');
    const err = document.querySelector('#error');
    const status = document.querySelector('#status');
    const engine = document.querySelector('#engine');
    return {
      state: el?.getAttribute('data-state') ?? null,
      answer: el ? el.textContent.trim() : null,
      text: el?.getAttribute('data-text') ?? null,
      correct: el?.getAttribute('data-correct') ?? null,
      error: err ? err.textContent.trim() : null,
      status: status?.getAttribute('data-state') ?? null,
      statusText: status ? status.textContent.trim() : null,
      engine: engine?.getAttribute('data-engine') ?? null,
      engineText: engine ? engine.textContent.trim() : null,
    };
  });
}

/**
 * Starts watching #answer: waitForAnswer(..., { armed: true }) then only accepts a state that
 * was written after this call (a re-solve of the same problem on another stage looks the same).
 */
export async function armAnswer(page) {
  await page.evaluate(() => {
    window.__e2eChanged = false;
    if (!window.__e2eObserver) {
      window.__e2eObserver = new MutationObserver((records) => {
        for (const r of records) {
          if (r.type === 'attributes' && r.target.id === 'answer') window.__e2eChanged = true;
          if (r.type === 'childList' && [...r.addedNodes].some((n) => n.id === 'answer' || n.querySelector?.('#answer'))) {
            window.__e2eChanged = true;
          }
        }
      });
      window.__e2eObserver.observe(document.documentElement, {
        subtree: true,
        childList: true,
        attributes: true,
        attributeFilter: ['data-state', 'data-text'],
      });
    }
  });
}

/**
 * Waits until #answer is done for the problem a + b (its data-text starts with "a + b =", the
 * operands with a padded stage's leading zeros) or ends in error, or the page's loading failed;
 * returns readAnswer's object. With armed, only after a change since armAnswer.
 */
export async function waitForAnswer(page, a, b, { timeout = TIMEOUT, armed = false } = {}) {
  const prefix = a === undefined ? null : `^0*${a} \\+ 0*${b} =`;
  try {
    await page.waitForFunction(
      ({ prefix, armed }) => {
        const el = document.querySelector('#answer');
        const st = document.querySelector('#status')?.getAttribute('data-state');
        if (st === 'failed') return true;
        if (!el) return false;
        if (armed && !window.__e2eChanged) return false;
        const s = el.getAttribute('data-state');
        if (s === 'error') return true;
        return s === 'done' && (prefix === null || new RegExp(prefix).test(el.getAttribute('data-text') ?? ''));
      },
      { prefix, armed },
      { timeout, polling: 50 },
    );
  } catch (err) {
    const seen = await readAnswer(page).catch(() => ({}));
    throw new Error(`no answer for ${a} + ${b} within ${timeout} ms; the page shows ${JSON.stringify(seen)}`, { cause: err });
  }
  return readAnswer(page);
}

/**
 * Whether `answer` (digits as `coconut solve` reports them) is a + b: written plainly, or with the
 * leading zeros of a coupled stage's answer, at most `width` digits (core's
 * `layout::answer_matches`): the question's columns and the carry column, a padded stage's
 * padding among them ([answerWidth] of the line's text).
 */
export function answerMatches(answer, a, b, width = Math.max(String(a).length, String(b).length) + 1) {
  if (answer === null || answer === undefined || !/^[0-9]+$/.test(answer)) return false;
  const plain = String(BigInt(a) + BigInt(b));
  return answer.length >= plain.length && answer.length <= width && answer.endsWith(plain)
    && /^0*$/.test(answer.slice(0, answer.length - plain.length));
}

/**
 * The most digits an answer may have, read from the question as a `coconut solve --json` or
 * `intervene --json` line's `text` writes it ("00347 + 00285 = ..." with two columns of padding):
 * its operands' written width and the carry column.
 */
export function answerWidth(text) {
  const question = String(text).split(' = ')[0];
  return Math.max(...question.split(' + ').map((x) => x.trim().length)) + 1;
}

/** answerMatches for a `coconut solve --json` line: its answer, at its question's width. */
export function cliRight(line, a, b) {
  return answerMatches(line.answer, a, b, answerWidth(line.text));
}

/** Asserts that the page's answer equals the oracle's (`coconut solve --json`) for a + b. */
export function assertSameAsCli(seen, cli, a, b, label) {
  assert.ok(!('error' in cli), `${label}: coconut refused ${a} + ${b}: ${cli.error}`);
  assert.equal(seen.status, 'ready', `${label}: #status data-state (text: ${seen.statusText})`);
  assert.equal(seen.state, 'done', `${label}: #answer data-state (#error: ${JSON.stringify(seen.error)})`);
  assert.equal(seen.answer, cli.answer ?? '', `${label}: #answer text (coconut answer ${JSON.stringify(cli.answer)})`);
  assert.equal(seen.text, cli.text, `${label}: #answer data-text`);
  const correct = cliRight(cli, a, b);
  assert.equal(seen.correct, String(correct), `${label}: #answer data-correct`);
  assert.equal(seen.error, '', `${label}: #error must be empty after a valid solve`);
}

/** Sets a text input the way a user does (clears, types, fires input/change). */
export async function setText(page, selector, value) {
  await page.fill(selector, String(value));
}

/** The selected position index (#position data-pos) as a number (NaN if missing). */
export async function position(page) {
  return Number(await page.getAttribute('#position', 'data-pos'));
}

export function hasShippedWeights() {
  return fs.existsSync(path.join(DIST, 'weights', 'manifest.json'));
}

/**
 * The weights the control tests use: the shipped folder when the build has one, else the fixture.
 * { param: value for ?weights= (null = the page default), dir: folder for coconut, label }
 */
export function controlWeights() {
  if (hasShippedWeights()) return { param: null, dir: path.join(DIST, 'weights'), label: 'shipped' };
  return { param: FIXTURE_MOUNT.slice(1) + '/', dir: FIXTURE, label: 'fixture' };
}
