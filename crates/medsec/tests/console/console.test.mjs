// The web console in a real browser: Debian's Chromium driven by Playwright, signed in through
// a real OpenID provider (oidc-provider.mjs), every view checked with axe-core, screenshots
// saved. Run by the end-to-end test `console::` (crates/medsec/tests/e2e/console.rs), which
// starts medsec on a demo fleet and the provider, and passes what it set up in the
// environment:
//   MEDSEC_URL       https://127.0.0.1:PORT (the operator port)
//   MEDSEC_TOKEN     an admin operator token (to change things behind the browser's back)
//   MEDSEC_CA        the server's CA chain (PEM), for that API call
//   EXPECT_DEVICES   how many devices the dashboard must show
//   DEVICE           a device with alerts and a timeline
//   INCIDENT         an incident not yet confirmed, on DEVICE
//   OTHER_INCIDENT   the incident that quarantined QUARANTINED, released through the API while
//                    the dashboard is watched
//   QUARANTINED      the quarantined device
//   SCREENSHOTS      where screenshots go
//   CAMPAIGN_RELEASES TARGET:VERSION:COUNTER of the broken build, then of the fix
//   CAMPAIGN_MODEL   the model whose devices (with agents running) the campaigns select
//   ADVISORY_FILE    an OSV advisory to upload from the risk page
// It prints one line per check and `RESULT {json}` at the end; any failed check exits 1.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const env = (name) => {
  const v = process.env[name];
  if (!v) { throw new Error(`${name} is not set`); }
  return v;
};
const base = env('MEDSEC_URL');
const shots = env('SCREENSHOTS');
fs.mkdirSync(shots, { recursive: true });
const result = { checks: [], axe: {}, timings: {} };

function check(ok, what) {
  result.checks.push({ ok: !!ok, what });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) { throw new Error(`check failed: ${what}`); }
}

// The browser, as the machine's probe starts it (no sandbox as root, no background traffic).
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function newContext() {
  // The demo's fleet CA and the provider's test CA are not the system's: the test trusts them
  // by ignoring HTTPS errors in this browser only.
  return browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1400, height: 1000 } });
}

// axe-core on the current page: no serious or critical violation.
async function axe(page, name) {
  await page.addScriptTag({ content: axeSource }).catch(async () => {
    // The CSP forbids inline scripts on medsec's pages (as it should): inject through the
    // DevTools protocol instead, which the page's policy does not govern.
    await page.evaluate(axeSource);
  });
  const r = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const out = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return out.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help, target: v.nodes[0]?.target }));
  });
  result.axe[name] = r;
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe on ${name}: no serious or critical violation ${bad.length ? JSON.stringify(bad) : `(${r.length} minor)`}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

// No inline script or style on the page, and the CSP header as medsec sends it.
async function noInline(page, response, name) {
  const csp = response.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline') && csp.includes("frame-ancestors 'none'"), `${name}: strict Content-Security-Policy header`);
  const inline = await page.evaluate(() => ({
    scripts: [...document.querySelectorAll('script')].filter((s) => !s.src).length,
    styles: document.querySelectorAll('[style], style').length,
    handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
    thirdParty: [...document.querySelectorAll('script[src], link[href]')].filter((e) => !(e.src || e.href).startsWith(location.origin)).length,
    integrity: [...document.querySelectorAll('script[src], link[rel=stylesheet]')].every((e) => e.integrity.startsWith('sha384-')),
  }));
  check(inline.scripts === 0 && inline.styles === 0 && inline.handlers === 0, `${name}: no inline script, style or handler`);
  check(inline.thirdParty === 0 && inline.integrity, `${name}: every asset from medsec, with an integrity hash`);
}

// Every page visited: 200, the CSP header, no inline script, style or handler, assets only
// from medsec with their integrity hashes.
async function visit(page, url, name) {
  const response = await page.goto(base + url);
  check(response.status() === 200, `${name}: GET ${url} answers 200 (got ${response.status()})`);
  await noInline(page, response, name);
  return response;
}

// Signs in through the provider's own pages as `login`.
async function signIn(page, login) {
  await page.goto(`${base}/ui/`);
  check(page.url().includes('/ui/login'), 'an anonymous visit goes to the sign-in page');
  await page.getByRole('link', { name: /Sign in with/ }).click();
  await page.waitForURL(/127\.0\.0\.1:\d+\/interaction\//);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  // The provider's consent page, when it asks.
  for (let i = 0; i < 3 && page.url().includes('/interaction/'); i += 1) {
    await page.click('button[type=submit]');
    await page.waitForLoadState();
  }
}

function api(method, route, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(base + route, {
      method,
      ca: fs.readFileSync(env('MEDSEC_CA')),
      headers: { authorization: `Bearer ${env('MEDSEC_TOKEN')}`, 'content-type': 'application/json' },
    }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', reject);
    if (body) { req.write(JSON.stringify(body)); }
    req.end();
  });
}

let failed = false;
try {
  const device = env('DEVICE');
  const incident = env('INCIDENT');

  // --- alice, security officer, through single sign-on ---
  const alice = await newContext();
  const page = await alice.newPage();
  await page.goto(`${base}/ui/`);
  await shot(page, '00-sign-in');
  await axe(page, 'sign-in');
  let t0 = Date.now();
  await signIn(page, 'alice');
  await page.waitForURL(`${base}/ui/`);
  result.timings.sign_in_ms = Date.now() - t0;
  check(await page.getByText('alice · release, security').count() === 1, 'alice is signed in with the roles her groups map to');
  const cookies = await alice.cookies(base);
  const session = cookies.find((c) => c.name === '__Host-medsec-session');
  check(session && session.httpOnly && session.secure && session.sameSite === 'Strict', 'the session cookie is HttpOnly, Secure, SameSite=Strict');

  // Dashboard.
  t0 = Date.now();
  await visit(page, '/ui/', 'dashboard');
  result.timings.dashboard_ms = Date.now() - t0;
  const heading = await page.locator('#h-fleet').innerText();
  check(heading === `${env('EXPECT_DEVICES')} devices`, `the dashboard counts the demo fleet (${heading})`);
  check(await page.locator('.tile').filter({ hasText: 'quarantined' }).locator('.n').innerText() === '1', 'the dashboard shows the quarantined pump');
  await page.waitForFunction(() => document.getElementById('live-state')?.textContent.includes('on'), null, { timeout: 10000 });
  await shot(page, '01-dashboard');
  await axe(page, 'dashboard');

  // Live: another operator releases the quarantined pump through the API; the wall screen
  // shows it without a reload.
  const other = env('OTHER_INCIDENT');
  const pump = env('QUARANTINED');
  const released = await api('POST', `/api/v1/incidents/${other}`, { action: 'playbook', playbook: 'release', device: pump });
  check(released.status === 200, `the API releases ${pump} (${released.status} ${released.body.slice(0, 200)})`);
  t0 = Date.now();
  await page.waitForFunction(() => document.querySelector('#fleet .tile .n')?.textContent === '0', null, { timeout: 15000 });
  result.timings.live_update_ms = Date.now() - t0;
  check(true, `the dashboard shows the release live, without a reload (${result.timings.live_update_ms} ms)`);

  // Devices.
  await visit(page, '/ui/devices?model=infusion-pump', 'devices');
  const rows = await page.locator('#devices tbody tr').count();
  check(rows > 0, `the device list filters by model (${rows} pumps)`);
  await shot(page, '02-devices');
  await axe(page, 'devices');
  await visit(page, `/ui/devices/${device}`, 'device');
  check(await page.locator('#timeline tbody tr').count() > 0, `${device}'s timeline is shown`);
  await shot(page, '03-device');
  await axe(page, 'device');
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'CSV' }).click()]);
  const csvText = fs.readFileSync(await csv.path(), 'utf8');
  check(csvText.split('\n').length > 2 && csvText.includes(device), 'the timeline downloads as CSV');

  // Incident: confirm, quarantine, release.
  await visit(page, `/ui/incidents/${incident}`, 'incident');
  await axe(page, 'incident');
  await page.selectOption('#cra', 'severe_incident');
  await page.getByRole('button', { name: 'Confirm incident' }).click();
  check((await page.locator('.notice').innerText()).includes('Incident confirmed'), 'the incident is confirmed from its page');
  check(await page.getByText('early warning').count() > 0, 'its reporting clocks run');
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: `Quarantine ${device}` }).click();
  check((await page.locator('.notice').innerText()).includes(`quarantine on ${device}: done`), `${device} is quarantined by the playbook`);
  await shot(page, '04-incident');
  await page.getByRole('button', { name: `Release ${device}`, exact: true }).click();
  check((await page.locator('.notice').innerText()).includes(`release on ${device}: done`), `${device} is released`);
  await visit(page, '/ui/incidents', 'incidents');
  await axe(page, 'incidents');

  // Alerts: acknowledge one.
  await visit(page, '/ui/alerts', 'alerts');
  await shot(page, '05-alerts');
  await axe(page, 'alerts');
  const ack = page.getByRole('button', { name: 'Acknowledge' }).first();
  await ack.click();
  check((await page.locator('.notice').innerText()).includes('acknowledged'), 'an alert is acknowledged');

  // Campaigns: the list, and a campaign from the form.
  await visit(page, '/ui/campaigns', 'campaigns');
  check(await page.getByText('Halted:').count() > 0, 'the halted campaign says why in one sentence');
  await shot(page, '06-campaigns');
  await axe(page, 'campaigns');
  await visit(page, '/ui/campaigns/new', 'campaign form');
  await axe(page, 'campaign form');

  // A campaign from the form: the live preview, then the broken build halts in its canaries
  // and the fix completes, watched on the campaign's page without a reload. The agents of the
  // demo's pumps run beside the test (their health check fails on the broken version).
  const [broken, fixed] = env('CAMPAIGN_RELEASES').split(',').map((r) => {
    const [target, version, counter] = r.split(':');
    return { target, version, counter };
  });
  const model = env('CAMPAIGN_MODEL');
  async function fillCampaign(name, release, windows) {
    await page.fill('#c-name', name);
    await page.fill('#c-target', release.target);
    await page.fill('#c-version', release.version);
    await page.fill('#c-release_counter', release.counter);
    await page.fill('#c-model', model);
    await page.fill('#c-canary', '2');
    await page.fill('#c-max_failure_rate', '0.2');
    await page.fill('#c-windows', windows);
  }
  await fillCampaign('fw-broken', broken, 'north|0 2 * * SUN|180|Europe/Berlin');
  await page.waitForFunction(() => document.getElementById('preview')?.innerText.includes('Europe/Berlin'), null, { timeout: 10000 })
    .catch(async (e) => { throw new Error(`no preview: ${await page.locator('#preview').innerText()} (${e.message})`); });
  const preview = await page.locator('#preview').innerText();
  const planned = preview.match(/\d+ devices in \d+ waves/);
  check(planned && preview.includes('canary'), `the form previews the plan as it is typed (${planned && planned[0]}, north's window in Europe/Berlin)`);
  await shot(page, '06b-campaign-preview');
  await axe(page, 'campaign preview');
  await page.fill('#c-windows', '');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  check((await page.locator('.notice').innerText()).includes('created and started'), 'the broken build\'s campaign is created and started from the form');
  t0 = Date.now();
  await page.waitForFunction(() => document.getElementById('campaign')?.innerText.includes('Halted:'), null, { timeout: 120000 });
  result.timings.halt_seen_ms = Date.now() - t0;
  check(true, `the campaign page shows the halt live, with its reason (${result.timings.halt_seen_ms} ms): ${(await page.locator('#campaign .bad').first().innerText())}`);
  await shot(page, '06c-campaign-halted');
  await visit(page, '/ui/campaigns/new', 'campaign form');
  await fillCampaign('fw-fix', fixed, '');
  await page.getByRole('button', { name: 'Create campaign' }).click();
  t0 = Date.now();
  await page.waitForFunction(() => document.querySelector('#campaign h3 span')?.textContent === 'completed', null, { timeout: 180000 });
  result.timings.complete_seen_ms = Date.now() - t0;
  check(true, `the fix's campaign completes, watched live (${result.timings.complete_seen_ms} ms)`);
  await shot(page, '06d-campaign-completed');

  // Releases: what the image repository signs, as devices verify it.
  await visit(page, '/ui/releases', 'releases');
  const releases = await page.locator('main table').innerText();
  check(releases.includes(broken.target) && releases.includes(fixed.target), 'the releases page lists the signed targets, the new ones included');
  const fixRow = await page.locator('tr', { hasText: fixed.target }).innerText();
  check(/\t4\t/.test(fixRow), `the fix runs on the four pumps (${fixRow.replace(/\s+/g, ' ')})`);
  await shot(page, '06e-releases');
  await axe(page, 'releases');

  // Alerts: suppress a rule on one device, with a reason.
  await visit(page, '/ui/alerts', 'alerts');
  const suppress = page.locator('details', { hasText: 'Suppress this rule' }).first();
  await suppress.locator('summary').click();
  await suppress.getByLabel('Reason').fill('sensor replaced; vendor confirmed the readings');
  await suppress.getByRole('button', { name: 'Suppress' }).click();
  check((await page.locator('.notice').innerText()).includes('suppressed for 7 days'), 'a rule is suppressed on a device with a reason');

  // Risk, compliance, audit.
  await visit(page, '/ui/risk', 'risk');
  await shot(page, '07-risk');
  await axe(page, 'risk');
  // An advisory read from a file in the browser and uploaded; a document that is not one is
  // refused, naming the problem.
  await page.setInputFiles('#u-file', env('ADVISORY_FILE'));
  await page.waitForFunction(() => document.getElementById('u-document').value.length > 100);
  await page.getByRole('button', { name: 'Upload' }).click();
  check((await page.locator('.notice').innerText()).includes('advisory stored'), 'an OSV advisory file is uploaded from the risk page');
  await page.fill('#u-document', '{"not": "an advisory"}');
  const refusedUpload = page.waitForResponse((r) => r.url().endsWith('/ui/risk/upload'));
  await page.getByRole('button', { name: 'Upload' }).click();
  const refusal = (await refusedUpload).status();
  const said = await page.locator('.failure').innerText().catch(() => '');
  check(refusal === 400 && said.includes('Not accepted'), `a document that is not an advisory is refused with 400, naming the problem (${refusal}: ${said.replace(/\s+/g, ' ').slice(0, 160)})`);
  await visit(page, '/ui/compliance', 'compliance');
  await shot(page, '08-compliance');
  await axe(page, 'compliance');
  const [bundle] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'SBOM + VEX bundle' }).click()]);
  const files = JSON.parse(fs.readFileSync(await bundle.path(), 'utf8'));
  check(Array.isArray(files) && files.some((f) => f.name === 'index.json'), `the compliance bundle downloads (${files.length} files)`);
  const today = new Date().toISOString().slice(0, 10);
  await visit(page, `/ui/audit?action=incident&since=${today}`, 'audit log');
  await shot(page, '09-audit');
  await axe(page, 'audit log');
  const entry = page.locator('table tbody tr td a').first();
  const seq = await entry.innerText();
  await entry.click();
  check((await page.locator('.notice').innerText()).startsWith(`Verified: entry ${seq} is in the log`), `entry ${seq}'s inclusion proof verifies under the signed head`);
  await shot(page, '10-audit-entry');
  await axe(page, 'audit entry');
  await visit(page, '/ui/audit', 'audit log');
  await page.getByRole('button', { name: 'Verify the whole log now' }).click();
  check((await page.locator('.notice').innerText()).includes('the audit log verifies'), 'the whole log verifies in place');

  // CSRF: the same session, a change without (or with another) token is refused.
  const noToken = await page.request.post(`${base}/ui/incidents/${incident}`, { form: { action: 'playbook', playbook: 'quarantine', device } });
  check(noToken.status() === 403, `a change without the CSRF token is refused (${noToken.status()})`);
  const wrongToken = await page.request.post(`${base}/ui/incidents/${incident}`, { form: { csrf: 'x'.repeat(44), action: 'playbook', playbook: 'quarantine', device } });
  check(wrongToken.status() === 403, `a change with another CSRF token is refused (${wrongToken.status()})`);

  // Sign out: the cookie no longer works.
  await page.goto(`${base}/ui/`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/ui\/login/);
  const after = await page.request.get(`${base}/ui/devices`, { maxRedirects: 0 });
  check(after.status() === 303, 'after signing out, pages send to the sign-in again');

  // --- victor, viewer: sees, cannot change ---
  const victor = await newContext();
  const vpage = await victor.newPage();
  await signIn(vpage, 'victor');
  await vpage.waitForURL(`${base}/ui/`);
  check(await vpage.getByText('victor · viewer').count() === 1, 'victor is signed in as a viewer');
  await visit(vpage, `/ui/incidents/${incident}`, 'incident (viewer)');
  vpage.once('dialog', (d) => d.accept());
  const refused = vpage.waitForResponse((r) => r.url().endsWith(`/ui/incidents/${incident}`) && r.request().method() === 'POST');
  await vpage.getByRole('button', { name: `Quarantine ${device}` }).click();
  check((await refused).status() === 403, 'a viewer\'s quarantine is refused with 403');
  check(await vpage.getByText('Not permitted').count() > 0, 'the page says it is not permitted');
  await shot(vpage, '11-viewer-refused');

  // --- nobody: signed in at the provider, no group, no role ---
  const nobody = await newContext();
  const npage = await nobody.newPage();
  await signIn(npage, 'nobody');
  check(await npage.getByText('No medsec role').count() === 1, 'a person whose groups give no role is not signed in');
} catch (e) {
  failed = true;
  console.log(`FAIL ${e.stack || e}`);
} finally {
  await browser.close();
  console.log(`RESULT ${JSON.stringify(result)}`);
}
process.exit(failed ? 1 : 0);
