// Screenshots of the page for the README (docs/screenshots/): a laptop, a phone and projector
// mode, on the shipped weights with the reference engine (headless WebGPU canvases can come out
// blank; the 2D canvases drawn here do not). Usage: node web/e2e/screenshots.mjs (page built).
import path from 'node:path';
import fs from 'node:fs';
import { REPO, server, launch } from './harness.mjs';

const out = path.join(REPO, 'docs', 'screenshots');
fs.mkdirSync(out, { recursive: true });
const srv = await server();
const browser = await launch();
const shots = [
  // A 6-digit problem, longer than any trained on, on the all-latent stage; its first thought selected.
  { name: 'laptop.png', viewport: { width: 1280, height: 1350 }, query: 'a=314159&b=271828&stage=stage5&animate=0', thought: 0 },
  { name: 'phone.png', viewport: { width: 390, height: 844 }, query: 'a=9999&b=1&animate=0', thought: 2 },
  // The classroom view: chapter, problem, player and stack in one 1280x720 screen.
  { name: 'projector.png', viewport: { width: 1280, height: 720 }, query: 'a=9090&b=910&animate=0&projector=1&stage=stage5&chapter=6', thought: 1 },
];
for (const shot of shots) {
  const context = await browser.newContext({ viewport: shot.viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  await page.goto(`${srv.url}?${shot.query}&engine=reference`);
  await page.waitForSelector('#answer[data-state=done]', { timeout: 120_000 });
  // Select a thought slot so that the inspector shows one (counted among the thoughts: a padded
  // stage's question is longer, so its thoughts start later).
  await page.locator('#timeline .tok[data-kind="thought"]').nth(shot.thought).click();
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(out, shot.name), fullPage: shot.name === 'phone.png' });
  console.log(`wrote docs/screenshots/${shot.name}`);
  await context.close();
}
await browser.close();
await srv.close();
