// Numerics (heart rate, rhythm, PVCs per minute, signal quality) and the
// heart-rate trend of the last hour.
//
// Status messages carry the sample they describe; they are applied when the
// playout clock reaches that sample, so the numbers change with the strip the
// clinician is looking at, not 150 ms earlier. The trend is kept in stream
// time (t0_ms + sample / fs), so a record replayed at 8x fills its hour in
// 7.5 minutes and a live patient's in one hour.

const TREND_SPAN_MS = 60 * 60 * 1000;
const TREND_MAX_POINTS = 3600 * 2;

const RHYTHM_NAMES = {
  '(N': 'Sinus rhythm',
  '(SBR': 'Sinus bradycardia',
  '(SVTA': 'SV tachyarrhythmia',
  '(B': 'Ventricular bigeminy',
  '(T': 'Ventricular trigeminy',
  '(AFIB': 'Atrial fibrillation',
  '(AFL': 'Atrial flutter',
  '(VT': 'Ventricular tachycardia',
};

export function rhythmName(label) {
  if (!label) return '--';
  return RHYTHM_NAMES[label] || label.replace(/^\(/, '');
}

export class Numerics {
  constructor(els) {
    this.els = els;          // {hr, rhythm, pvc, quality, trend}
    this.pending = [];       // status messages not yet reached by playout
    this.trend = [];         // [t_ms, hr]
    this.current = null;
    this.trendDirty = true;
  }

  reset() {
    this.pending.length = 0;
    this.trend.length = 0;
    this.current = null;
    this.trendDirty = true;
    this.show(null);
  }

  push(status) { this.pending.push(status); }

  // Applies the statuses whose sample the playout has reached.
  advance(pos, stream) {
    let latest = null;
    while (this.pending.length && !(this.pending[0].sample > pos)) latest = this.pending.shift();
    if (this.pending.length > 600) latest = this.pending.splice(0, this.pending.length - 600).pop();
    if (!latest) return;
    this.current = latest;
    this.show(latest);
    if (Number.isFinite(latest.hr_bpm) && stream) {
      const t = stream.t0_ms + (latest.sample / stream.fs_hz) * 1000;
      const last = this.trend[this.trend.length - 1];
      if (!last || t > last[0]) {
        this.trend.push([t, latest.hr_bpm]);
        while (this.trend.length && (t - this.trend[0][0] > TREND_SPAN_MS || this.trend.length > TREND_MAX_POINTS)) this.trend.shift();
        this.trendDirty = true;
      }
    }
  }

  show(s) {
    const e = this.els;
    const hr = s && Number.isFinite(s.hr_bpm) ? Math.round(s.hr_bpm) : null;
    e.hr.textContent = hr == null ? '--' : String(hr);
    e.rhythm.textContent = s ? rhythmName(s.rhythm) : '--';
    e.rhythm.title = s && s.rhythm ? s.rhythm : '';
    e.pvc.textContent = s && Number.isFinite(s.pvc_per_min) ? String(Math.round(s.pvc_per_min * 10) / 10) : '--';
    e.quality.textContent = s && s.quality ? s.quality : '--';
    e.quality.dataset.quality = s && s.quality ? s.quality : '';
  }

  drawTrend() {
    if (!this.trendDirty) return;
    this.trendDirty = false;
    const cv = this.els.trend;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, cv.clientWidth), h = Math.max(60, cv.clientHeight);
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
      cv.width = Math.round(w * dpr);
      cv.height = Math.round(h * dpr);
    }
    const c = cv.getContext('2d');
    c.setTransform(dpr, 0, 0, dpr, 0, 0);
    c.fillStyle = '#0d1117';
    c.fillRect(0, 0, w, h);
    const lo = 30, hi = 180;
    const padL = 28;
    const yOf = (bpm) => h - 4 - ((Math.min(hi, Math.max(lo, bpm)) - lo) / (hi - lo)) * (h - 10);
    c.font = '10px system-ui, sans-serif';
    c.textBaseline = 'middle';
    c.fillStyle = '#8b949e';
    c.strokeStyle = '#30363d';
    c.lineWidth = 1;
    for (const bpm of [50, 100, 150]) {
      const y = Math.round(yOf(bpm)) + 0.5;
      c.beginPath(); c.moveTo(padL, y); c.lineTo(w, y); c.stroke();
      c.fillText(String(bpm), 2, y);
    }
    if (!this.trend.length) return;
    const tEnd = this.trend[this.trend.length - 1][0];
    const xOf = (t) => padL + (1 - (tEnd - t) / TREND_SPAN_MS) * (w - padL - 2);
    c.strokeStyle = '#3fb950';
    c.lineWidth = 1.5;
    c.beginPath();
    let prevT = -Infinity;
    for (const [t, bpm] of this.trend) {
      const x = xOf(t), y = yOf(bpm);
      // A gap of more than a minute is drawn as a gap.
      if (t - prevT > 60000) c.moveTo(x, y); else c.lineTo(x, y);
      prevT = t;
    }
    c.stroke();
    c.fillStyle = '#8b949e';
    c.textBaseline = 'top';
    c.fillText('-60 min', padL + 2, 2);
    c.textAlign = 'right';
    c.fillText('now', w - 2, 2);
    c.textAlign = 'left';
  }
}
