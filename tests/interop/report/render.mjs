// Opens a page in headless Chromium through playwright-core (DevTools protocol), the way an
// analyst's browser would: no network, a desktop-sized window. Takes a full-page screenshot
// and prints, as one JSON line, everything the console reported as an error, uncaught page
// errors, failed requests (a missing asset shows up here) and a few facts about the page,
// among them how much of the screenshot is ink: the PNG is decoded by the browser itself
// (drawn on a canvas in a second tab), so no image library is needed anywhere.
//
//   node render.mjs PLAYWRIGHT_CORE_DIR CHROMIUM PAGE.html SHOT.png
import { createRequire } from 'module';

const [playwrightDir, chromium, page, shot] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { chromium: launcher } = require(playwrightDir);

const browser = await launcher.launch({
  executablePath: chromium,
  // The flags this machine's closed network needs (docs/operations.md, "CI").
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic'],
});
const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, offline: true });
const tab = await context.newPage();
const consoleErrors = [];
const pageErrors = [];
const failedRequests = [];
tab.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
tab.on('pageerror', (e) => pageErrors.push(String(e)));
tab.on('requestfailed', (r) => failedRequests.push(`${r.url()}: ${r.failure()?.errorText}`));
await tab.goto(new URL(`file://${page}`).href, { waitUntil: 'load' });
const png = await tab.screenshot({ path: shot, fullPage: true });
const facts = await tab.evaluate(() => ({
  title: document.title,
  height: document.documentElement.scrollHeight,
  svgs: document.querySelectorAll('svg').length,
  sections: [...document.querySelectorAll('section h2')].map((h) => h.textContent),
  scripts: document.querySelectorAll('script').length,
}));
// Share of pixels unlike the top-left one, and distinct colours once the low 4 bits of
// each channel are dropped.
const inspector = await context.newPage();
const ink = await inspector.evaluate(async (src) => {
  const img = new Image();
  img.src = src;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const g = canvas.getContext('2d');
  g.drawImage(img, 0, 0);
  const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let differ = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i] !== px[0] || px[i + 1] !== px[1] || px[i + 2] !== px[2]) differ++;
    colours.add(((px[i] & 0xf0) << 16) | ((px[i + 1] & 0xf0) << 8) | (px[i + 2] & 0xf0));
  }
  return { width: canvas.width, height: canvas.height, inked: differ / (px.length / 4), colours: colours.size };
}, `data:image/png;base64,${png.toString('base64')}`);
await browser.close();
console.log(JSON.stringify({ console_errors: consoleErrors, page_errors: pageErrors, failed_requests: failedRequests, ...facts, screenshot: ink }));
