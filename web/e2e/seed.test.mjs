// Test 8: a weights folder of the seed's family (an imported GPT-2 Coconut checkpoint). The
// repository's stand-in (a real torch.save of a small GPT-2 with the seed's 50,261 tokens) is
// imported as the four stages with `coconut import`, its stage files stored in pieces of 1 MiB
// (as a GPT-2 over 64 MiB is), and opened with ?weights=. Every stage must answer as `coconut
// solve --weights DIR --stage S --json` does (answer and text), problems outside the seed's data
// are refused at the field, the page names the model it runs, and the page stays clean.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  server, launch, openPage, pageUrl, readManifest, solveCli, waitForAnswer, armAnswer, setText,
  COCONUT, REPO,
} from './harness.mjs';

let browser;
let srv;
let tmp;
let folder;
// The seed's kind of problem: two operands of one length, 2 to 4 digits.
const problems = [['347', '285'], ['12', '34'], ['9999', '1111'], ['5050', '4949']];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'coconut-e2e-seed-'));
  folder = path.join(tmp, 'seed');
  for (const k of [0, 1, 2, 3]) {
    const r = spawnSync(COCONUT, ['import', '--pt', path.join(REPO, 'tests/fixtures/seed-standin/standin.pt'),
      '--stage', `stage${k}`, '--n-head', '2', '--dtype', 'f32', '--shard-mb', '1', '--out', folder], { encoding: 'utf8' });
    assert.equal(r.status, 0, `coconut import: ${r.stderr}`);
  }
  // The same folder with stage3 said to be 150 MB in three pieces: the page must ask before
  // fetching any of them (and fetches nothing when told not to).
  const large = path.join(tmp, 'large');
  fs.cpSync(folder, large, { recursive: true });
  const manifest = readManifest(large);
  const s3 = manifest.stages.find((s) => s.id === 'stage3');
  s3.bytes = 150e6;
  s3.shards = [1, 2, 3].map((i) => ({ file: `absent-${i}.safetensors`, bytes: 50e6, sha256: '0'.repeat(64) }));
  fs.writeFileSync(path.join(large, 'manifest.json'), JSON.stringify(manifest));
  srv = await server({ '/seed-weights': folder, '/large-weights': large });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("the seed's GPT-2 in the page", () => {
  it('stores its stages in pieces, as a large GPT-2 is', () => {
    const manifest = readManifest(folder);
    assert.equal(manifest.family?.layout, 'seed');
    for (const s of manifest.stages) {
      assert.ok(s.shards?.length >= 2, `${s.id} in pieces`);
      for (const piece of s.shards) assert.ok(fs.existsSync(path.join(folder, piece.file)), piece.file);
    }
  });

  it('answers every stage as coconut solve does', async (t) => {
    const session = await openPage(browser);
    try {
      for (const stage of ['stage0', 'stage1', 'stage2', 'stage3']) {
        const cli = solveCli(folder, stage, problems);
        const [a, b] = problems[0];
        await session.page.goto(pageUrl(srv.url, { weights: 'seed-weights/', a, b, stage, animate: 0 }));
        for (const [i, [a, b]] of problems.entries()) {
          if (i > 0) {
            await armAnswer(session.page);
            await setText(session.page, '#a', a);
            await setText(session.page, '#b', b);
            await session.page.click('#solve');
          }
          const seen = await waitForAnswer(session.page, a, b, { armed: i > 0 });
          const want = cli.get(`${a} + ${b}`);
          assert.ok(!('error' in want), `coconut refused ${a} + ${b}: ${want.error}`);
          assert.equal(seen.state, 'done', `${stage} ${a} + ${b}: #error ${JSON.stringify(seen.error)}`);
          assert.equal(seen.answer, want.answer ?? '', `${stage} ${a} + ${b}: #answer`);
          assert.equal(seen.text, want.text, `${stage} ${a} + ${b}: data-text`);
          const right = want.answer === String(BigInt(a) + BigInt(b));
          assert.equal(seen.correct, String(right), `${stage} ${a} + ${b}: data-correct`);
          const thoughts = await session.page.$$eval('#timeline [data-kind=thought]', (els) => els.length);
          assert.equal(thoughts, want.thoughts, `${stage} ${a} + ${b}: thoughts on the timeline`);
          t.diagnostic(`${stage} ${a} + ${b}: ${seen.text}`);
        }
      }
      const facts = await session.page.textContent('footer');
      assert.match(facts, /a 2-layer GPT-2 .* of the seed's family/, 'the footer names the model');
      assert.match(facts, /imported from its PyTorch checkpoint/);
      assert.doesNotMatch(facts, /trained from scratch/);
      session.assertClean();
    } finally {
      await session.close();
    }
  });

  it('asks before downloading a stage over 100 MB, and fetches nothing when told not to', async () => {
    const session = await openPage(browser);
    const fetched = [];
    session.page.on('request', (r) => fetched.push(new URL(r.url()).pathname));
    try {
      await session.page.goto(pageUrl(srv.url, { weights: 'large-weights/', a: '347', b: '285', stage: 'stage3', animate: 0 }));
      await session.page.waitForSelector('#large-ask:not([hidden])', { timeout: 60_000 });
      assert.match(await session.page.textContent('#status'), /150 MB to download/);
      await session.page.click('#large-no');
      await session.page.waitForSelector('#status[data-state=failed]', { timeout: 60_000 });
      assert.match(await session.page.textContent('#status'), /declined/);
      assert.ok(!fetched.some((p) => p.includes('absent-')), fetched.join(' '));
      session.assertClean({ allowConsole: true });
    } finally {
      await session.close();
    }
  });

  it("refuses problems outside the seed's data at the field", async () => {
    const session = await openPage(browser);
    try {
      await session.page.goto(pageUrl(srv.url, { weights: 'seed-weights/', a: '347', b: '85', stage: 'stage3', animate: 0 }));
      const seen = await waitForAnswer(session.page, '347', '85');
      assert.equal(seen.state, 'error');
      assert.match(seen.error, /same length, 2 to 4 digits/);
      assert.match(await session.page.textContent('#b-error'), /same length/);
      // The examples it would refuse are not offered.
      const offered = await session.page.$$eval('#preset option:not([hidden])', (os) => os.map((o) => o.value).filter(Boolean));
      assert.ok(offered.includes('347+285') && !offered.includes('7+8') && !offered.includes('999+1'), offered.join(' '));
      session.assertClean();
    } finally {
      await session.close();
    }
  });
});
