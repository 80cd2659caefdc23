// The dashboard page: login, then one monitored source on screen.
//
// Data flow: the feed (WebSocket) fills the sample ring and hands beats,
// status, events and alerts to their owners; one requestAnimationFrame loop
// asks the playout clock which sample is "now" and draws the strip, the
// numerics and the heart for that sample. Nothing else schedules drawing, so
// the three can never disagree, and pausing the clock freezes them together.
// window.cardiotwin exposes the loop's state read-only for the browser tests
// and the frame-rate benchmark (docs/dashboard.md).

import { Api } from './api.js';
import { Feed } from './feed.js';
import { SampleRing, MISSING } from './samples.js';
import { PlayoutClock } from './playout.js';
import { HeartTimeline } from './heartclock.js';
import { StripView } from './strip.js';
import { Numerics } from './numerics.js';
import { AlertPanel } from './alerts.js';
import { loadPxPerMm, setupCalibration } from './calibration.js';
import { createHeart2D } from './heart2d.js';

const RING_SECONDS = 90;
const MAX_BEATS = 4000;
const MAX_EVENTS = 300;
const PHASE_TEXT = {
  diastole: 'diastole', 'atrial-systole': 'atrial systole',
  'ventricular-systole': 'ventricular systole', relaxation: 'relaxation',
};

const q = (id) => document.querySelector(`[data-testid="${id}"]`);

const api = new Api();
const clock = new PlayoutClock();
const timeline = new HeartTimeline();
const strip = new StripView(q('strip-canvas'));
const numerics = new Numerics({
  hr: q('hr-value'), rhythm: q('rhythm-value'), pvc: q('pvc-value'), quality: q('quality-value'), trend: q('hr-trend'),
});

const S = {
  user: null,
  sources: { patients: [], records: [] },
  want: null,          // {source, id} chosen by the user
  stream: null,        // the last 'stream' message for it
  ring: null,
  beats: [],           // {sample, cls}, ascending
  events: [],
  beatsSeen: {},
  seenUpTo: -Infinity, // beats with sample <= this were counted
  lastBeat: null,
  frames: 0,
  frameTimes: [],
  fps: 0,
  delayMs: NaN,
  serverOffsetMs: 0,   // server clock - local clock, from hello (0 when within 1 s)
  heart: null,
  webgl: false,
  heartState: timeline.at(NaN),
  paused: false,
  pxPerMm: loadPxPerMm(),
  layoutKey: '',
};

function settings() {
  return {
    pxPerMm: S.pxPerMm,
    mmPerS: Number(q('sweep-select').value),
    mmPerMv: Number(q('gain-select').value),
    windowS: Number(q('window-select').value),
  };
}

function say(text) { q('feed-message').textContent = text || ''; }

const alerts = new AlertPanel({
  api, q,
  settings,
  localStrip: (fromMs, toMs) => localStrip(fromMs, toMs),
  onError: say,
});

// ---- window.cardiotwin (read-only) ---------------------------------------------
Object.defineProperty(window, 'cardiotwin', {
  value: Object.freeze({
    get frames() { return S.frames; },
    get fps() { return S.fps; },
    get delayMs() { return S.delayMs; },
    get lastBeat() { return S.lastBeat ? { ...S.lastBeat } : null; },
    get beatsSeen() { return { ...S.beatsSeen }; },
    get heartPhase() {
      const h = S.heartState;
      return { atria: h.atria, ventricles: h.ventricles, phase: h.phase, kind: h.kind, af: h.af };
    },
    get webgl() { return S.webgl; },
    get source() {
      if (!S.want) return null;
      const st = S.stream;
      return {
        source: S.want.source, id: S.want.id, fs_hz: st ? st.fs_hz : null,
        leads: st ? st.leads.map((l) => l.name) : [], live: st ? !!st.live : null,
        speed: clock.speed, paused: S.paused,
      };
    },
    get playoutSample() { return clock.position(performance.now()); },
  }),
  writable: false,
  configurable: false,
});

// ---- views ------------------------------------------------------------------------
function showLogin(message) {
  q('dashboard').hidden = true;
  q('user-box').hidden = true;
  q('login-view').hidden = false;
  q('login-error').textContent = message || '';
  q('login-username').focus();
}

async function enterDashboard(session) {
  S.user = session;
  q('login-view').hidden = true;
  q('dashboard').hidden = false;
  q('user-box').hidden = false;
  q('user-name').textContent = `${session.user} (${session.role})`;
  if (!S.heart) await createHeart();
  feed.open();
  await loadSources();
}

function hasWebGL2() {
  try { return !!document.createElement('canvas').getContext('webgl2'); } catch { return false; }
}

function useFallback(reason) {
  if (S.heart) S.heart.dispose();
  S.webgl = false;
  q('heart-view').hidden = true;
  q('heart-fallback').hidden = false;
  q('heart-note').hidden = false;
  q('heart-note').textContent = reason;
  q('autorotate-button').disabled = true;
  q('reset-view-button').disabled = true;
  S.heart = createHeart2D(q('heart-fallback'));
}

async function createHeart() {
  if (!hasWebGL2()) { useFallback('WebGL is not available in this browser: the heart is shown as a 2D pulse.'); return; }
  try {
    const { createHeart3D } = await import('./heart3d.js');
    S.heart = await createHeart3D(q('heart-view'));
    S.webgl = true;
    S.heart.onContextLost(() => useFallback('The graphics context was lost: the heart is shown as a 2D pulse.'));
  } catch (e) {
    useFallback(`The 3D heart could not start (${e.message}): showing a 2D pulse.`);
  }
}

// ---- sources ------------------------------------------------------------------------
async function loadSources() {
  let res;
  try {
    res = await api.sources();
  } catch (e) {
    say(`sources: ${e.message}`);
    return;
  }
  S.sources = { patients: res.patients || [], records: res.records || [] };
  const sel = q('source-select');
  const old = sel.value;
  sel.replaceChildren();
  const group = (label, items, kind) => {
    if (!items.length) return;
    const g = document.createElement('optgroup');
    g.label = label;
    for (const it of items) {
      const o = document.createElement('option');
      o.value = `${kind}/${it.id}`;
      o.textContent = kind === 'patient'
        ? `${it.id}${it.live ? ' (live)' : ''}${it.alerts ? ` · ${it.alerts} alert${it.alerts > 1 ? 's' : ''}` : ''}`
        : `record ${it.id} (${Math.round((it.duration_s || 0) / 60)} min)`;
      g.append(o);
    }
    sel.append(g);
  };
  group('Patients', S.sources.patients, 'patient');
  group('Records', S.sources.records, 'record');
  if (!sel.options.length) { say('No patients or records to show yet.'); return; }
  const fromHash = decodeURIComponent(location.hash.replace(/^#/, ''));
  const pick = [fromHash, old].find((v) => v && [...sel.options].some((o) => o.value === v)) || sel.options[0].value;
  sel.value = pick;
  selectSource(pick);
}

function selectSource(value) {
  const m = /^(patient|record)\/(.+)$/.exec(value);
  if (!m) return;
  const [, source, id] = m;
  history.replaceState(null, '', `#${encodeURIComponent(value).replace(/%2F/g, '/')}`);
  S.want = { source, id };
  resetStream();
  const playback = q('playback-select');
  playback.disabled = source !== 'record';
  if (source === 'record') playback.value = '1';
  setPaused(false, false);
  const sub = source === 'patient'
    ? { type: 'subscribe', source, id, seconds: 10 }
    : { type: 'subscribe', source, id, speed: 1, start_s: 0 };
  feed.subscribe(sub);
  alerts.setSource(S.want);
  say('');
}

function resetStream() {
  S.stream = null;
  S.ring = null;
  S.beats = [];
  S.events = [];
  S.beatsSeen = {};
  S.seenUpTo = -Infinity;
  S.lastBeat = null;
  S.delayMs = NaN;
  S.layoutKey = '';
  clock.reset();
  timeline.reset();
  numerics.reset();
}

function onStream(msg) {
  const fs = Number(msg.fs_hz);
  const leads = Array.isArray(msg.leads) ? msg.leads : [];
  if (!(fs > 0 && fs <= 10000) || !leads.length || leads.length > 16) {
    say(`feed: stream message with fs_hz ${msg.fs_hz} and ${leads.length} leads refused`);
    return;
  }
  const cont = S.stream && S.ring && S.stream.id === msg.id && S.stream.source === msg.source
    && S.stream.fs_hz === fs && S.stream.leads.length === leads.length && msg.first_sample === S.ring.end;
  if (!cont) {
    const keepPaused = S.paused;
    resetStream();
    S.ring = new SampleRing(leads.length, Math.round(RING_SECONDS * fs));
    S.ring.reset(msg.first_sample || 0);
    clock.configure(fs, msg.speed || 1);
    timeline.configure(fs);
    if (keepPaused) clock.pause(performance.now());
    const sel = q('lead-select');
    const before = sel.value;
    sel.replaceChildren(new Option('All leads', 'all'), ...leads.map((l, i) => new Option(l.name || `lead ${i + 1}`, String(i))));
    sel.value = [...sel.options].some((o) => o.value === before) ? before : 'all';
  } else {
    clock.setSpeed(msg.speed || 1, performance.now());
  }
  S.stream = { ...msg, fs_hz: fs, leads };
  if (!msg.live) q('playback-select').value = String(msg.speed || 1);
}

function onBeats(msg) {
  if (!S.stream || !Array.isArray(msg.beats)) return;
  const pos = clock.position(performance.now());
  for (const b of msg.beats) {
    if (!Number.isFinite(b.sample)) continue;
    const beat = { sample: b.sample, cls: typeof b.cls === 'string' ? b.cls : 'Q' };
    const n = S.beats.length;
    if (n && S.beats[n - 1].sample >= beat.sample) {
      if (S.beats.some((x) => x.sample === beat.sample)) continue;
      S.beats.push(beat);
      S.beats.sort((x, y) => x.sample - y.sample);
    } else {
      S.beats.push(beat);
    }
    timeline.addBeat(beat.sample, beat.cls, Number.isFinite(pos) ? pos : beat.sample);
  }
  if (S.beats.length > MAX_BEATS) S.beats.splice(0, S.beats.length - MAX_BEATS);
  // Markers for samples already on screen are drawn now; the others come
  // with their samples. A paused strip gets the markers of what it shows.
  for (const b of msg.beats) if (Number.isFinite(b.sample)) strip.markLate(b.sample, typeof b.cls === 'string' ? b.cls : 'Q');
}

function onEvent(msg) {
  if (!S.stream || !Number.isFinite(msg.sample)) return;
  const same = S.events.find((e) => e.kind === msg.kind && e.sample === msg.sample);
  if (same) {
    Object.assign(same, msg);
  } else {
    // Rhythm and signal quality are states: a new one ends the previous one,
    // and the normal states (sinus rhythm, good signal) are not highlighted.
    if (msg.kind === 'rhythm' || msg.kind === 'quality') {
      for (const e of S.events) if (e.kind === msg.kind && e.end_sample == null && e.sample < msg.sample) e.end_sample = msg.sample;
    }
    const normal = (msg.kind === 'rhythm' && msg.label === '(N') || (msg.kind === 'quality' && msg.label === 'ok');
    if (!normal) S.events.push({ ...msg });
  }
  if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
  if (msg.sample <= clock.position(performance.now())) strip.invalidate();
}

// Samples of the ring as /api/strip would give them (for replayed records).
function localStrip(fromMs, toMs) {
  const st = S.stream, ring = S.ring;
  if (!st || !ring || !Number.isFinite(st.t0_ms)) return null;
  const a = Math.max(ring.start, Math.floor(((fromMs - st.t0_ms) * st.fs_hz) / 1000));
  const b = Math.min(ring.end, Math.ceil(((toMs - st.t0_ms) * st.fs_hz) / 1000));
  if (b - a < st.fs_hz) return null;
  const samples = st.leads.map((_, l) => {
    const arr = new Array(b - a);
    for (let s = a; s < b; s++) { const v = ring.get(l, s); arr[s - a] = v === MISSING ? null : v; }
    return arr;
  });
  return {
    fs_hz: st.fs_hz, t0_ms: st.t0_ms, first_sample: a, leads: st.leads, samples,
    beats: S.beats.filter((x) => x.sample >= a && x.sample < b),
  };
}

// ---- the feed ------------------------------------------------------------------------
const feed = new Feed({
  onState(state, detail) {
    const el = q('connection-status');
    el.dataset.state = state;
    el.textContent = state === 'open' ? 'connected' : state === 'connecting' ? 'connecting…' : state === 'closed' ? 'offline' : detail || state;
    if (state === 'error') {
      // A refused upgrade looks like any other drop: ask whether the session is still there.
      api.restore().catch((e) => { if (e.status === 401) sessionEnded(); });
    }
  },
  onProblem(text) { say(text); },
  resubscription(sub) {
    if (sub.source === 'record' && S.stream && S.ring) {
      const pos = clock.position(performance.now());
      if (Number.isFinite(pos)) return { ...sub, start_s: Math.max(0, pos / S.stream.fs_hz), speed: clock.speed };
    }
    return sub;
  },
  onFrame(frame) {
    if (!S.ring || !S.stream) return;
    try {
      S.ring.push(frame);
    } catch (e) {
      say(e.message);
      return;
    }
    clock.onData(S.ring.end, performance.now());
  },
  onMessage(msg) {
    switch (msg.type) {
      case 'hello':
        // The two clocks are taken as one unless they differ by more than a
        // second: below that, skew cannot be told apart from the hello's own
        // queueing and transit, and the delay would be off by those instead.
        if (Number.isFinite(msg.server_ms)) {
          const off = msg.server_ms - Date.now();
          S.serverOffsetMs = Math.abs(off) > 1000 ? off : 0;
        }
        break;
      case 'stream': onStream(msg); break;
      case 'beats': onBeats(msg); break;
      case 'status':
        if (S.stream && Number.isFinite(msg.sample)) numerics.push(msg);
        break;
      case 'event': onEvent(msg); break;
      case 'alert':
        if (msg.alert) alerts.onFeedAlert(msg.alert);
        break;
      case 'error': say(msg.message || 'feed error'); break;
      default: break;
    }
  },
});

// ---- controls ------------------------------------------------------------------------
function setPaused(paused, tell = true) {
  S.paused = paused;
  const now = performance.now();
  if (paused) clock.pause(now); else clock.resume(now, !!(S.stream && S.stream.live));
  const b = q('pause-button');
  b.textContent = paused ? 'Resume' : 'Pause';
  b.setAttribute('aria-pressed', paused ? 'true' : 'false');
  if (tell) feed.setPaused(paused);
}

q('controls').addEventListener('submit', (ev) => ev.preventDefault());
q('source-select').addEventListener('change', (ev) => selectSource(ev.target.value));
for (const id of ['lead-select', 'window-select', 'sweep-select', 'gain-select']) {
  q(id).addEventListener('change', () => { S.layoutKey = ''; });
}
q('playback-select').addEventListener('change', (ev) => {
  const v = Number(ev.target.value);
  clock.setSpeed(v, performance.now());
  feed.setSpeed(v);
});
q('pause-button').addEventListener('click', () => setPaused(!S.paused));
q('autorotate-button').addEventListener('click', (ev) => {
  const on = ev.currentTarget.getAttribute('aria-pressed') !== 'true';
  ev.currentTarget.setAttribute('aria-pressed', on ? 'true' : 'false');
  if (S.heart) S.heart.setAutoRotate(on);
});
q('reset-view-button').addEventListener('click', () => { if (S.heart) S.heart.resetView(); });

const calibration = setupCalibration(q('calibrate-dialog'), q, () => S.pxPerMm, (v) => { S.pxPerMm = v; S.layoutKey = ''; });
q('calibrate-button').addEventListener('click', () => calibration.open());

q('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = q('login-username').value.trim();
  const pass = q('login-password').value;
  const err = q('login-error');
  if (!user || !pass) { err.textContent = 'Enter your user name and password.'; return; }
  const btn = q('login-submit');
  btn.disabled = true;
  err.textContent = '';
  try {
    const s = await api.login(user, pass);
    q('login-password').value = '';
    await enterDashboard(s);
  } catch (e) {
    err.textContent = e.status === 429
      ? `Too many failed attempts: try again in ${e.retryAfterS || 'a few'} seconds.`
      : e.message;
    q('login-password').select();
  } finally {
    btn.disabled = false;
  }
});

function leaveDashboard() {
  feed.close();
  S.want = null;
  resetStream();
  alerts.setSource(null);
}

function sessionEnded() {
  if (q('dashboard').hidden) return;
  leaveDashboard();
  showLogin('Your session has ended: sign in again.');
}
api.onUnauthorized = sessionEnded;

q('logout-button').addEventListener('click', async () => {
  leaveDashboard();
  try { await api.logout(); } catch (e) { /* the session is gone either way */ }
  showLogin('Signed out.');
});

// ---- the drawing loop ------------------------------------------------------------------
function ensureLayout() {
  const st = S.stream;
  if (!st) return false;
  const s = settings();
  const leadSel = q('lead-select').value;
  const shown = leadSel === 'all' ? st.leads.map((_, i) => i) : [Number(leadSel)];
  const key = JSON.stringify([s, shown, st.fs_hz, st.leads.length, window.devicePixelRatio]);
  if (key === S.layoutKey) return true;
  S.layoutKey = key;
  strip.setLayout({ ...s, fsHz: st.fs_hz, leads: st.leads, shown });
  const cal = Math.abs(S.pxPerMm - 96 / 25.4) < 1e-6 ? 'not calibrated' : 'calibrated';
  q('scale-note').textContent = `${s.mmPerS} mm/s · ${s.mmPerMv} mm/mV · ${s.windowS} s · ${S.pxPerMm.toFixed(2)} px/mm (${cal})`;
  return true;
}

let shownPhase = '';
function frame(t) {
  requestAnimationFrame(frame);
  S.frames++;
  const ft = S.frameTimes;
  ft.push(t);
  while (ft.length > 2 && t - ft[0] > 1000) ft.shift();
  if (ft.length > 1) S.fps = ((ft.length - 1) * 1000) / (ft[ft.length - 1] - ft[0]);
  if (q('dashboard').hidden) return;

  const pos = clock.position(performance.now());
  if (ensureLayout()) strip.drawSweep(S.ring, pos, S.beats, S.events);

  if (Number.isFinite(pos)) {
    // Beats that the playout has passed: counted once, as they appear.
    for (let i = S.beats.length - 1; i >= 0; i--) {
      const b = S.beats[i];
      if (b.sample <= S.seenUpTo) break;
      if (b.sample > pos) continue;
      S.beatsSeen[b.cls] = (S.beatsSeen[b.cls] || 0) + 1;
      if (!S.lastBeat || b.sample > S.lastBeat.sample) S.lastBeat = { sample: b.sample, cls: b.cls };
    }
    if (S.lastBeat) S.seenUpTo = Math.max(S.seenUpTo, S.lastBeat.sample);
    const sm = S.ring ? S.ring.serverMsAt(Math.floor(pos)) : NaN;
    if (Number.isFinite(sm) && !S.paused) S.delayMs = Date.now() + S.serverOffsetMs - sm;
  }
  numerics.advance(pos, S.stream);
  numerics.drawTrend();
  timeline.setRhythm(numerics.current ? numerics.current.rhythm : null);
  S.heartState = timeline.at(pos);
  if (S.heart) S.heart.update(S.heartState);
  if (S.heartState.phase !== shownPhase) {
    shownPhase = S.heartState.phase;
    const el = q('heart-phase');
    el.textContent = PHASE_TEXT[shownPhase] || shownPhase;
    el.dataset.phase = shownPhase;
  }
}
requestAnimationFrame(frame);

// ---- start ------------------------------------------------------------------------------
api.restore().then(enterDashboard).catch((e) => showLogin(e.status === 401 ? '' : e.message));
