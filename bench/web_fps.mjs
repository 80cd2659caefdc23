// Dashboard frame rate and display delay in headless Chromium, by hand:
//
//   node bench/web_fps.mjs [--bin build/release/cardiotwin] [--web build/release/web]
//                          [--seconds 20] [--source record/106|patient/demo-1]
//                          [--demo-chunk-ms 1000] (the demo gateway's posting interval)
//
// Starts `cardiotwin serve` on a temporary database (record 106 of
// $CARDIOTWIN_MITDB imported, two demo patients), logs in through the form,
// opens a 2-lead 360 Hz source (by default record 106 replayed at 1x, then the
// live demo-1) and, for --seconds each, records every requestAnimationFrame
// timestamp and window.cardiotwin.delayMs (now - server_ms of the samples on
// screen). Prints the median and 5th-percentile frame rate (from frame
// intervals) and the median and 95th-percentile delay. Floors: 60 fps,
// 250 ms. Headless Chromium has no GPU here: WebGL runs in software.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const opt = { bin: path.join(root, 'build/release/cardiotwin'), seconds: 20, source: null, web: null, 'demo-chunk-ms': null };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, ''), v = process.argv[i + 1];
  if (!(k in opt) || v === undefined) {
    console.error('usage: node bench/web_fps.mjs [--bin FILE] [--web DIR] [--seconds N] [--source record/106|patient/demo-1] [--demo-chunk-ms MS]');
    process.exit(2);
  }
  opt[k] = k === 'seconds' ? Number(v) : v;
}
const web = opt.web || path.join(path.dirname(opt.bin), 'web');
const mitdb = process.env.CARDIOTWIN_MITDB || path.join(root, '../shared/data/mitdb');
const tmp = mkdtempSync(path.join(tmpdir(), 'ct-webfps.'));
const db = path.join(tmp, 'ct.db');
const PASSWORD = 'benchmark password 1234';

const q = (arr, p) => { const s = [...arr].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

let server = null, browser = null;
try {
  writeFileSync(path.join(tmp, 'pw'), `${PASSWORD}\n`, { mode: 0o600 });
  execFileSync(opt.bin, ['--db', db, 'user', 'create', '--name', 'bench', '--role', 'clinician', '--password-file', path.join(tmp, 'pw')]);
  const sources = opt.source ? [opt.source] : [];
  if (!opt.source) {
    if (existsSync(path.join(mitdb, '106.hea'))) {
      execFileSync(opt.bin, ['--db', db, 'import', path.join(mitdb, '106')]);
      sources.push('record/106');
    }
    sources.push('patient/demo-1');
  } else if (opt.source.startsWith('record/')) {
    execFileSync(opt.bin, ['--db', db, 'import', path.join(mitdb, opt.source.slice(7))]);
  }
  server = spawn(opt.bin, ['--db', db, '--quiet', 'serve', '--port', '0', '--demo', '2', '--demo-chunk-ms', String(opt['demo-chunk-ms'] || 1000), '--web-root', web], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('the server did not start in 20 s')), 20000);
    server.stdout.on('data', (d) => { out += d; const m = /listening on (https:\/\/\S+)/.exec(out); if (m) { clearTimeout(t); resolve(m[1]); } });
    server.on('exit', (c) => reject(new Error(`serve exited ${c}`)));
  });
  browser = await chromium.launch({ executablePath: process.env.CT_CHROMIUM || '/usr/bin/chromium', headless: true });
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
  const page = await ctx.newPage();
  await page.goto(url);
  await page.getByTestId('login-username').fill('bench');
  await page.getByTestId('login-password').fill(PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('dashboard').waitFor({ timeout: 10000 });
  const webgl = await page.evaluate(() => window.cardiotwin.webgl);
  console.log(`chromium headless, viewport 1400x1000, heart: ${webgl ? 'WebGL (software)' : '2D fallback'}, ${opt.seconds} s per source`);
  for (const src of sources) {
    await page.getByTestId('source-select').selectOption(src);
    await page.waitForFunction((s) => { const c = window.cardiotwin; return c.source && `${c.source.source}/${c.source.id}` === s && Number.isFinite(c.delayMs); }, src, { timeout: 15000 });
    await page.waitForTimeout(3000);   // the playout buffer settles
    const r = await page.evaluate((ms) => new Promise((resolve) => {
      const t = [], d = [];
      const t0 = performance.now();
      function f(now) {
        t.push(now);
        if (Number.isFinite(window.cardiotwin.delayMs)) d.push(window.cardiotwin.delayMs);
        if (now - t0 < ms) requestAnimationFrame(f); else resolve({ t, d, info: window.cardiotwin.source });
      }
      requestAnimationFrame(f);
    }), opt.seconds * 1000);
    const fps = r.t.slice(1).map((x, i) => 1000 / (x - r.t[i]));
    console.log(`${src} (${r.info.leads.length} leads, ${r.info.fs_hz} Hz, ${r.info.live ? 'live' : `replay ${r.info.speed}x`}): `
      + `${r.t.length} frames; fps median ${q(fps, 0.5).toFixed(1)}, p5 ${q(fps, 0.05).toFixed(1)}; `
      + `delay median ${q(r.d, 0.5).toFixed(0)} ms, p95 ${q(r.d, 0.95).toFixed(0)} ms`);
  }
} catch (e) {
  console.error(`web_fps: ${e.message}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  if (server) { server.kill('SIGTERM'); await new Promise((r) => server.once('exit', r)); }
  rmSync(tmp, { recursive: true, force: true });
}
