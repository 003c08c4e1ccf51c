// The approver's browser: opens an approval page of the gateway in headless Chromium
// (playwright-core over the DevTools protocol), signs in at the issuer's sign-in page, reads
// the call the page shows and clicks Approve or Reject. Prints one JSON line with what the
// page showed; a screenshot of the decided page goes to SHOT.
//
//   node decide.mjs PLAYWRIGHT_CORE_DIR CHROMIUM LOGIN approve|reject SHOT.png URL
//
// The sign-in page is the Okta simulator's (#username, #password, #signin) or oidc-provider's
// (its login form and consent prompt). When the page
// refuses the person (the requester, or a token without the approve scope), the refusal is
// printed instead and nothing is clicked.
import { createRequire } from 'module';

const [playwrightDir, chromium, login, decision, shot, url] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { chromium: launcher } = require(playwrightDir);

const browser = await launcher.launch({
  executablePath: chromium,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic'],
});
const out = { login };
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const tab = await context.newPage();
  const pageErrors = [];
  tab.on('pageerror', (e) => pageErrors.push(String(e)));
  await tab.goto(url, { waitUntil: 'load' });
  out.signin_url = tab.url();
  // The issuer's pages until the gateway's page: a sign-in form (the simulator's #username,
  // oidc-provider's input[name=login]), then any consent page's submit button.
  for (let step = 0; step < 6 && !(await tab.$('#call, #message')); step++) {
    const user = await tab.$('#username, input[name=login]');
    if (user) {
      await user.fill(login);
      await tab.fill('#password, input[name=password]', 'correct horse battery staple');
    }
    const submit = await tab.$('#signin, button[type=submit]');
    if (!submit) break;
    await Promise.all([tab.waitForNavigation({ waitUntil: 'load' }), submit.click()]);
  }
  await tab.waitForSelector('#call, #message', { timeout: 15000 });
  out.page_url = tab.url();
  const refused = await tab.$('#message');
  if (refused) {
    out.refused = (await refused.textContent()).trim();
    out.title = await tab.textContent('h1');
  } else {
    const text = async (sel) => (await tab.textContent(sel)).trim();
    out.tool = await text('#tool');
    out.target = await text('#target');
    out.requester = await text('#requester');
    out.reasoning = await text('#reasoning');
    out.approver = await text('#approver');
    out.evidence = await tab.$$eval('#evidence tr', (rows) => rows.slice(1).map((r) => [...r.cells].map((c) => c.textContent.trim())));
    await Promise.all([tab.waitForLoadState('load'), tab.click(decision === 'approve' ? 'button.approve' : 'button.reject')]);
    await tab.waitForSelector('#outcome, #message', { timeout: 15000 });
    const outcome = await tab.$('#outcome');
    out.outcome = outcome ? (await outcome.textContent()).trim() : (await tab.textContent('#message')).trim();
  }
  await tab.screenshot({ path: shot, fullPage: true });
  out.page_errors = pageErrors;
} catch (e) {
  out.error = String(e);
  // Where it stopped, for the test's message.
  try {
    const [tab] = browser.contexts()[0]?.pages() ?? [];
    if (tab) {
      out.stopped_at = tab.url();
      out.stopped_text = (await tab.textContent('body'))?.slice(0, 500);
    }
  } catch {}
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
