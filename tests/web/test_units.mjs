// Unit tests of the dashboard's pure modules (no browser): the sample frame
// parser and ring, the playout clock and the heart timeline.
//   node tests/web/test_units.mjs        (ctest: web/units)
// The modules are plain ES modules served to the browser as .js; node would
// read them as CommonJS, so they are copied to .mjs in a temporary folder.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = process.env.CT_SOURCE_DIR || path.resolve(here, '../..');
const tmp = mkdtempSync(path.join(tmpdir(), 'ct-webunit-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
async function load(name) {
  const to = path.join(tmp, name.replace(/\.js$/, '.mjs'));
  copyFileSync(path.join(src, 'web/js', name), to);
  return import(pathToFileURL(to).href);
}
const { parseSampleFrame, SampleRing, MISSING } = await load('samples.js');
const { PlayoutClock } = await load('playout.js');
const { HeartTimeline, PR_MS, qtMs } = await load('heartclock.js');

function frameBuf({ kind = 0x53, version = 1, nLeads = 2, nFrames = 3, first = 100, serverMs = 1.5e12, values, extra = 0 } = {}) {
  const n = nLeads * nFrames;
  const buf = new ArrayBuffer(24 + 2 * n + extra);
  const dv = new DataView(buf);
  dv.setUint8(0, kind); dv.setUint8(1, version); dv.setUint16(2, nLeads, true); dv.setUint32(4, nFrames, true);
  dv.setBigInt64(8, BigInt(first), true); dv.setFloat64(16, serverMs, true);
  for (let i = 0; i < n; i++) dv.setInt16(24 + 2 * i, values ? values[i] : i * 10 - 5, true);
  return buf;
}

test('a sample frame is parsed frame-major, little-endian', () => {
  const f = parseSampleFrame(frameBuf({ values: [1, -2, 300, -32768, 32767, 0] }));
  assert.equal(f.nLeads, 2);
  assert.equal(f.nFrames, 3);
  assert.equal(f.firstSample, 100);
  assert.equal(f.serverMs, 1.5e12);
  assert.deepEqual([...f.samples], [1, -2, 300, -32768, 32767, 0]);
});

test('malformed frames are refused with the field at fault', () => {
  assert.throws(() => parseSampleFrame(new ArrayBuffer(10)), /10 bytes, header needs 24/);
  assert.throws(() => parseSampleFrame(frameBuf({ kind: 0x54 })), /kind 0x54/);
  assert.throws(() => parseSampleFrame(frameBuf({ version: 2 })), /version 2/);
  assert.throws(() => parseSampleFrame(frameBuf({ extra: 2 })), /header promises 36/);
  assert.throws(() => parseSampleFrame(frameBuf({ nLeads: 0, nFrames: 0 })), /n_leads 0/);
  assert.throws(() => parseSampleFrame(frameBuf({ nLeads: 17, nFrames: 1 })), /n_leads 17/);
  assert.throws(() => parseSampleFrame(frameBuf({ first: -1 })), /first_sample -1/);
  // A header promising far more than any frame could hold is refused before allocation.
  const big = frameBuf({ nFrames: 1 });
  new DataView(big).setUint32(4, 0xffffffff, true);
  assert.throws(() => parseSampleFrame(big), /limit/);
  assert.throws(() => parseSampleFrame('S'), /not binary/);
});

test('the ring holds the newest samples by stream index, gaps read as missing', () => {
  const r = new SampleRing(2, 10);
  r.reset(100);
  r.push(parseSampleFrame(frameBuf({ first: 100, nFrames: 3, values: [1, 2, 3, 4, 5, 6], serverMs: 1000 })));
  assert.equal(r.start, 100);
  assert.equal(r.end, 103);
  assert.equal(r.get(0, 100), 1);
  assert.equal(r.get(1, 102), 6);
  assert.equal(r.get(0, 103), MISSING);
  assert.equal(r.get(0, 99), MISSING);
  // A gap of two frames, then data: the gap is missing, not stale.
  r.push(parseSampleFrame(frameBuf({ first: 105, nFrames: 3, values: [7, 8, 9, 10, 11, 12], serverMs: 2000 })));
  assert.equal(r.get(0, 103), MISSING);
  assert.equal(r.get(0, 104), MISSING);
  assert.equal(r.get(0, 105), 7);
  assert.equal(r.serverMsAt(101), 1000);
  assert.equal(r.serverMsAt(106), 2000);
  assert.ok(Number.isNaN(r.serverMsAt(103)));
  // Wrapping: after 10 more frames only the last 10 are held.
  r.push(parseSampleFrame(frameBuf({ first: 108, nFrames: 10, values: Array.from({ length: 20 }, (_, i) => 100 + i), serverMs: 3000 })));
  assert.equal(r.end, 118);
  assert.equal(r.start, 108);
  assert.equal(r.get(0, 107), MISSING);
  assert.equal(r.get(0, 108), 100);
  assert.equal(r.get(1, 117), 119);
  assert.throws(() => r.push(parseSampleFrame(frameBuf({ nLeads: 1, first: 118 }))), /1 leads, stream has 2/);
});

test('the playout clock starts 150 ms behind and settles 100-200 ms behind 100 ms bursts', () => {
  const c = new PlayoutClock();
  c.configure(360, 1);
  assert.ok(Number.isNaN(c.position(0)));
  c.onData(3600, 1000);                       // 10 s of history arrives at t = 1000 ms
  assert.equal(c.position(1000), 3600 - 54);  // 150 ms x 0.36 samples/ms
  // Data every 100 ms, exactly on time.
  let newest = 3600;
  const lows = [];
  let prev = c.position(1000);
  for (let t = 1100; t <= 61000; t += 100) {
    // Smooth: between two bursts the trace moves 36 +- 3 % samples, never stands.
    const p = c.position(t);
    if (t > 3000) assert.ok(Math.abs(p - prev - 36) < 1.2, `step ${p - prev} at ${t}`);
    prev = p;
    lows.push((newest - p) / 0.36);
    newest += 36;
    c.onData(newest, t);
  }
  const low = lows.slice(-100);
  const mean = low.reduce((a, b) => a + b, 0) / low.length;
  assert.ok(Math.abs(mean - 100) < 15, `buffer before a burst ${mean} ms`);
  // Without data the trace waits at the newest sample.
  assert.equal(c.position(81000), newest);
});

test('one-second bursts: the clock learns a deeper buffer and then never stands still', () => {
  const c = new PlayoutClock();
  c.configure(360, 1);
  let newest = 3600;
  c.onData(newest, 0);
  let stalls = 0;
  let prev = c.position(0);
  for (let t = 1000; t <= 30000; t += 1000) {
    newest += 360;
    c.onData(newest, t);
    for (let f = t; f < t + 1000; f += 16) {
      const p = c.position(f);
      if (t > 3000 && p === prev) stalls++;
      prev = p;
    }
  }
  assert.equal(stalls, 0, 'frames where the trace stood still after settling');
  const before = (newest - c.position(30999)) / 0.36;
  assert.ok(before > 0 && before < 250, `buffer before the next burst ${before} ms`);
});

test('a late burst: the trace holds, then continues without a leap', () => {
  const c = new PlayoutClock();
  c.configure(360, 1);
  let newest = 36;
  c.onData(newest, 0);
  for (let t = 100; t <= 5000; t += 100) { newest += 36; c.onData(newest, t); }
  const held = c.position(5400);
  assert.equal(held, newest);                  // 400 ms without data: standing at the edge
  newest += 36 * 4;
  c.onData(newest, 5400);
  assert.equal(c.position(5450), held);        // waits floorMs more ...
  const p1 = c.position(5516.7);
  assert.ok(p1 - held > 0 && p1 - held < 8, `step ${p1 - held} samples`);   // ... then one frame's worth
});

test('a stall of seconds resynchronises instead of crawling', () => {
  const c = new PlayoutClock();
  c.configure(250, 1);
  c.onData(250, 0);
  for (let t = 100; t <= 1000; t += 100) c.onData(250 + t * 0.25, t);
  c.onData(500 + 250 * 10, 1100);              // ten seconds arrive at once
  c.onData(500 + 250 * 10 + 25, 1200);
  assert.ok(c.bufferedMs(1200) < 400, `buffered ${c.bufferedMs(1200)} ms`);
});

test('pause freezes; resume jumps to the live edge or continues a replay', () => {
  const live = new PlayoutClock();
  live.configure(360, 1);
  live.onData(3600, 0);
  live.pause(1000);
  const frozen = live.position(1000);
  live.onData(3600 + 360 * 5, 5000);
  assert.equal(live.position(5000), frozen);
  live.resume(5000, true);
  assert.equal(live.position(5000), 3600 + 360 * 5 - 54);

  const replay = new PlayoutClock();
  replay.configure(360, 4);
  replay.onData(36000, 0);
  replay.pause(50);
  const at = replay.position(50);
  assert.equal(at, 36000 - 216 + 72);                // 150 ms behind, then 50 ms at 4x
  replay.resume(9000, false);
  assert.equal(replay.position(9000), at);
  assert.ok(Math.abs(replay.position(9050) - (at + 50 * 1.44)) < 1e-6);   // 4x speed
});

const FS = 360;
const ms = (x) => (x * FS) / 1000;

function regular(tl, n, rrMs, first = 1000) {
  let s = first;
  for (let i = 0; i < n; i++) { tl.addBeat(s, 'N', s + ms(150)); s += ms(rrMs); }
  return s - ms(rrMs);   // last R
}

test('a normal beat: ventricles contract from the QRS, relax after QT', () => {
  const tl = new HeartTimeline();
  tl.configure(FS);
  const last = regular(tl, 5, 800);
  const qt = qtMs(800);
  // Known 150 ms after the R peak: ventricular systole from then on.
  assert.equal(tl.at(last + ms(100)).phase, 'diastole');
  const early = tl.at(last + ms(160));
  assert.equal(early.phase, 'ventricular-systole');
  const peak = tl.at(last + ms(qt - 20));
  assert.ok(peak.ventricles > 0.95, `peak ${peak.ventricles}`);
  assert.ok(early.ventricles < peak.ventricles);
  assert.equal(tl.at(last + ms(qt + 50)).phase, 'relaxation');
  assert.equal(tl.at(last + ms(qt + 200)).phase, 'diastole');
  assert.equal(tl.at(last + ms(qt + 200)).ventricles, 0);
});

test('a beat known before the playout reaches it contracts at the R peak itself', () => {
  const tl = new HeartTimeline();
  tl.configure(FS);
  tl.addBeat(1000, 'N', 900);
  assert.equal(tl.at(999).phase, 'diastole');
  assert.equal(tl.at(1000 + ms(5)).phase, 'ventricular-systole');
});

test('regular sinus rhythm: the atria kick a PR interval before the next QRS', () => {
  const tl = new HeartTimeline();
  tl.configure(FS);
  const last = regular(tl, 5, 800);
  const next = last + ms(800);
  const kick = tl.at(next - ms(PR_MS) + ms(60));
  assert.equal(kick.phase, 'atrial-systole');
  assert.ok(kick.atria > 0.8, `atria ${kick.atria}`);
  assert.equal(tl.at(next - ms(PR_MS) - ms(10)).atria, 0);
  assert.equal(tl.at(next - ms(10)).atria, 0);
});

test('a PVC: weaker, slower squeeze, no atrial kick, kick resumes after the compensatory pause', () => {
  const tl = new HeartTimeline();
  tl.configure(FS);
  const last = regular(tl, 5, 800);
  const pvc = last + ms(480);
  tl.addBeat(pvc, 'V', pvc + ms(150));
  const n = tl.at(last + ms(200)), v = tl.at(pvc + ms(200));
  assert.equal(v.kind, 'V');
  assert.equal(v.phase, 'ventricular-systole');
  assert.ok(v.ventricles < n.ventricles, `V ${v.ventricles} vs N ${n.ventricles}`);
  let maxV = 0;
  for (let t = 150; t < 450; t += 5) maxV = Math.max(maxV, tl.at(pvc + ms(t)).ventricles);
  assert.ok(maxV <= 0.76, `V peak ${maxV}`);
  // The sinus beat one RR after `last` falls in the PVC's refractory period: no kick there ...
  for (let t = -200; t <= 0; t += 5) assert.equal(tl.at(last + ms(800 + t)).atria, 0);
  // ... but one before the beat two RR after it.
  const kick = tl.at(last + ms(1600 - PR_MS + 60));
  assert.ok(kick.atria > 0.8, `atria ${kick.atria}`);
});

test('atrial fibrillation: atria quiver, never kick, ventricles follow the beats', () => {
  const tl = new HeartTimeline();
  tl.configure(FS);
  const last = regular(tl, 5, 800);
  tl.setRhythm('(AFIB');
  const vals = [];
  for (let t = 0; t < 2000; t += 10) {
    const h = tl.at(last + ms(t));
    assert.notEqual(h.phase, 'atrial-systole');
    assert.ok(h.atria < 0.2);
    vals.push(h.atria);
  }
  const distinct = new Set(vals.map((x) => x.toFixed(3)));
  assert.ok(distinct.size > 50, 'the atria move');
  assert.ok(tl.at(last + ms(200)).af);
  tl.setRhythm('(N');
  assert.equal(tl.at(last + ms(200)).af, false);
});

test('asystole: at most one predicted kick, then the heart is still', () => {
  const tl = new HeartTimeline();
  tl.configure(FS);
  const last = regular(tl, 5, 800);
  for (let t = 1200; t < 8000; t += 10) {
    const h = tl.at(last + ms(t));
    assert.equal(h.ventricles, 0);
    assert.equal(h.atria, 0);
    assert.equal(h.phase, 'diastole');
  }
  const none = new HeartTimeline();
  none.configure(FS);
  assert.deepEqual([none.at(5000).atria, none.at(5000).ventricles, none.at(5000).phase], [0, 0, 'diastole']);
});

test('irregular rhythm without the AF label predicts no kick', () => {
  const tl = new HeartTimeline();
  tl.configure(FS);
  let s = 1000;
  for (const rr of [600, 1000, 700, 1100, 650]) { s += ms(rr); tl.addBeat(s, 'N', s + ms(150)); }
  for (let t = 300; t < 1500; t += 10) assert.equal(tl.at(s + ms(t)).atria, 0);
});
