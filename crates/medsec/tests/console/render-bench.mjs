// The console's first render in Debian's Chromium, for `cargo bench -p medsec --bench console`:
// each page in PAGES, RUNS times, each in a fresh tab of a signed-in context (cookie COOKIE on
// MEDSEC_URL); prints JSON: per page, navigation start to first contentful paint and to the
// load event, p50 and p95, in milliseconds.
import { chromium } from 'playwright-core';

const base = process.env.MEDSEC_URL;
const runs = Number(process.env.RUNS || 10);
const pages = (process.env.PAGES || '/ui/').split(',');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
const url = new URL(base);
await context.addCookies([{
  name: '__Host-medsec-session', value: process.env.COOKIE, domain: url.hostname, path: '/',
  secure: true, httpOnly: true, sameSite: 'Strict',
}]);
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.round((s.length - 1) * p))]; };
const out = [];
for (const path of pages) {
  const fcp = [];
  const load = [];
  for (let i = 0; i < runs + 1; i += 1) {
    const page = await context.newPage();
    await page.goto(base + path, { waitUntil: 'load' });
    // The paint entry can come after the load event: wait for it (buffered), up to 5 s.
    const t = await page.evaluate(() => new Promise((resolve) => {
      const nav = performance.getEntriesByType('navigation')[0];
      const done = (fcp) => resolve({ fcp, load: nav.loadEventEnd });
      const seen = performance.getEntriesByName('first-contentful-paint')[0];
      if (seen) { done(seen.startTime); return; }
      new PerformanceObserver((list) => {
        const e = list.getEntriesByName('first-contentful-paint')[0];
        if (e) { done(e.startTime); }
      }).observe({ type: 'paint', buffered: true });
      setTimeout(() => done(NaN), 5000);
    }));
    if (!page.url().startsWith(base + path.split('?')[0])) { throw new Error(`${path} went to ${page.url()}`); }
    await page.close();
    if (i > 0) { fcp.push(t.fcp); load.push(t.load); }
  }
  out.push({ page: path, fcp_p50: pct(fcp, 0.5), fcp_p95: pct(fcp, 0.95), load_p50: pct(load, 0.5), load_p95: pct(load, 0.95) });
}
await browser.close();
console.log(JSON.stringify(out));
