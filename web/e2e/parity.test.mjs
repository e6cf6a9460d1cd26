// Test 1: the page writes the same answer and the same decoded sequence as `coconut solve`,
// for every stage of the manifest, on the shipped weights (when web/dist/weights has them) and on
// the fixture, with the reference engine and with WebGPU (SwiftShader in headless Chromium),
// each forced. Every page is also checked for errors (test 3).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  DIST, FIXTURE, FIXTURE_MOUNT, openPage, pageUrl, readManifest, solveCli,
  makeProblems, waitForAnswer, assertSameAsCli, hasShippedWeights, serverAndBrowser,
} from './harness.mjs';

// Problems per stage: the reference engine is cheap; WebGPU on SwiftShader is slower.
const N_REFERENCE = Number(process.env.E2E_PROBLEMS ?? 8);
const N_WEBGPU = Number(process.env.E2E_GPU_PROBLEMS ?? 4);

const folders = [];
if (hasShippedWeights()) folders.push({ label: 'shipped weights', param: null, dir: path.join(DIST, 'weights') });
folders.push({ label: 'fixture weights', param: FIXTURE_MOUNT.slice(1) + '/', dir: FIXTURE });

const engines = [
  { label: 'reference engine (forced)', param: 'reference', expect: 'reference', n: N_REFERENCE },
  // Headless Chromium's WebGPU is SwiftShader, a CPU adapter on which the page's default is the
  // (faster) reference engine: WebGPU is asked for explicitly.
  { label: 'WebGPU (forced)', param: 'webgpu', expect: 'webgpu', n: N_WEBGPU },
];

// The server and the browser of this file's tests, started before them.
const env = serverAndBrowser();

it('serves the shipped weights or says why not', (t) => {
  if (!hasShippedWeights()) t.diagnostic(`${DIST}/weights/manifest.json is missing: only the fixture weights are checked`);
  assert.ok(folders.length >= 1);
});

for (const folder of folders) {
  for (const engine of engines) {
    describe(`${folder.label}, ${engine.label}`, () => {
      const manifest = readManifest(folder.dir);
      const problems = makeProblems(engine.n, manifest.max_digits);
      let session;
      before(async () => {
        session = await openPage(env.browser);
      });
      after(async () => {
        await session?.close();
      });

      for (const stage of manifest.stages) {
        it(`stage ${stage.id}: ${problems.length} problems equal coconut solve`, async () => {
          const cli = solveCli(folder.dir, stage.id, problems);
          const { page } = session;
          for (const [a, b] of problems) {
            const url = pageUrl(env.srv.url, { a, b, stage: stage.id, animate: 0, weights: folder.param, engine: engine.param });
            await page.goto(url);
            const seen = await waitForAnswer(page, a, b);
            const label = `${url.slice(env.srv.url.length - 1)}`;
            assertSameAsCli(seen, cli.get(`${a} + ${b}`), a, b, label);
            assert.equal(seen.engine, engine.expect, `${label}: #engine data-engine (text: ${seen.engineText})`);
            assert.ok(seen.engineText, `${label}: #engine names the backend`);
            const selected = await page.inputValue('#stage');
            assert.equal(selected, stage.id, `${label}: #stage shows the stage of the URL`);
          }
          session.assertClean();
        });
      }
    });
  }
}
