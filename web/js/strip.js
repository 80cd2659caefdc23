// The ECG strip: clinical grid, traces, calibration pulse, beat markers, events.
//
// Everything is laid out in millimetres and converted once with the screen's
// calibrated px/mm, so 25 mm/s and 10 mm/mV are true on a calibrated screen.
// The live strip is a sweep display, as on a bedside monitor: the write
// position moves left to right and wraps, older samples stay to its right
// until an erase bar ahead of it clears them. Each animation frame redraws
// the whole strip from the sample ring at the playout position (a cached grid
// image, then one path per lead): at 360 Hz and 25 mm/s that is about four
// samples per pixel, a few thousand line segments, far below one frame's
// budget, and it keeps beat markers that arrive late (the detector decides
// ~0.3 s after the R peak) exactly on their sample without any bookkeeping.

import { MISSING } from './samples.js';

export const DEFAULT_PX_PER_MM = 96 / 25.4;   // CSS reference pixel
const MARKER_BAND_MM = 5;
const ERASE_MM = 8;

export const BEAT_COLOURS = { N: '#1b5e20', V: '#0039cb', other: '#6d4c41' };
const TRACE = '#111111';

function rowHeightMm(mmPerMv) {
  return Math.min(45, Math.max(25, 3 * mmPerMv)) + MARKER_BAND_MM;
}

export class StripView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.grid = document.createElement('canvas');
    this.layout = null;
    this.drawnPos = null;      // playout position of the last sweep drawn
    this.drawnLayout = null;
    this.needFull = true;
  }

  // leads: [{name, gain_adu_per_mv, baseline_adu}], shown: lead indices.
  setLayout({ pxPerMm, mmPerS, mmPerMv, windowS, fsHz, leads, shown }) {
    const calMm = 0.2 * mmPerS;            // a 200 ms wide 1 mV pulse
    const marginMm = 3 + calMm + 3;
    const rowMm = rowHeightMm(mmPerMv);
    const widthMm = marginMm + windowS * mmPerS;
    const heightMm = Math.max(1, shown.length) * rowMm;
    const dpr = window.devicePixelRatio || 1;
    const cssW = Math.round(widthMm * pxPerMm);
    const cssH = Math.round(heightMm * pxPerMm);
    this.layout = {
      pxPerMm, mmPerS, mmPerMv, windowS, fsHz, leads, shown, calMm, marginMm, rowMm,
      dpr, cssW, cssH,
      x0: marginMm * pxPerMm,
      sweepPx: windowS * mmPerS * pxPerMm,
      pxPerSample: (mmPerS * pxPerMm) / fsHz,
      samplesPerSweep: windowS * fsHz,
    };
    for (const c of [this.canvas, this.grid]) {
      c.width = Math.round(cssW * dpr);
      c.height = Math.round(cssH * dpr);
    }
    this.canvas.style.width = `${cssW}px`;
    this.canvas.style.height = `${cssH}px`;
    this.drawGrid();
  }

  baselineY(row) {
    const L = this.layout;
    return (row * L.rowMm + MARKER_BAND_MM + (L.rowMm - MARKER_BAND_MM) * 0.6) * L.pxPerMm;
  }

  drawGrid() {
    const L = this.layout;
    const g = this.grid.getContext('2d');
    g.setTransform(L.dpr, 0, 0, L.dpr, 0, 0);
    g.fillStyle = '#fffafa';
    g.fillRect(0, 0, L.cssW, L.cssH);
    const lines = (major) => {
      g.beginPath();
      const firstMm = -Math.floor(L.marginMm);
      for (let mm = firstMm; L.x0 + mm * L.pxPerMm <= L.cssW; mm += 1) {
        if ((((mm % 5) + 5) % 5 === 0) !== major) continue;
        const x = Math.round(L.x0 + mm * L.pxPerMm) + 0.5;
        if (x < 0) continue;
        g.moveTo(x, 0); g.lineTo(x, L.cssH);
      }
      for (let mm = 0; mm * L.pxPerMm <= L.cssH; mm += 1) {
        if ((mm % 5 === 0) !== major) continue;
        const y = Math.round(mm * L.pxPerMm) + 0.5;
        g.moveTo(0, y); g.lineTo(L.cssW, y);
      }
      g.strokeStyle = major ? '#e48f8f' : '#f6d0d0';
      g.lineWidth = 1;
      g.stroke();
    };
    lines(false);
    lines(true);
    // Lead names and the 1 mV calibration pulse, in the margin of each row.
    g.font = '600 11px system-ui, sans-serif';
    g.textBaseline = 'top';
    L.shown.forEach((lead, row) => {
      const y0 = this.baselineY(row);
      const h = L.mmPerMv * L.pxPerMm;
      const xa = 1.5 * L.pxPerMm, xb = 3 * L.pxPerMm, xc = xb + L.calMm * L.pxPerMm, xd = xc + 1.5 * L.pxPerMm;
      g.beginPath();
      g.moveTo(xa, y0); g.lineTo(xb, y0); g.lineTo(xb, y0 - h); g.lineTo(xc, y0 - h); g.lineTo(xc, y0); g.lineTo(xd, y0);
      g.strokeStyle = TRACE;
      g.lineWidth = 1.4;
      g.stroke();
      g.fillStyle = TRACE;
      g.fillText(L.leads[lead] ? L.leads[lead].name : `lead ${lead}`, 2, row * L.rowMm * L.pxPerMm + 2);
    });
  }

  clear() {
    const L = this.layout;
    const c = this.ctx;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.drawImage(this.grid, 0, 0);
    c.setTransform(L.dpr, 0, 0, L.dpr, 0, 0);
  }

  // One lead's samples [sFrom, sTo) with x = xOf(s), broken at missing samples.
  trace(get, lead, row, sFrom, sTo, xOf) {
    const L = this.layout;
    const info = L.leads[lead] || { gain_adu_per_mv: 200, baseline_adu: 0 };
    const gain = info.gain_adu_per_mv > 0 ? info.gain_adu_per_mv : 200;
    const base = info.baseline_adu || 0;
    const y0 = this.baselineY(row);
    const k = (L.mmPerMv * L.pxPerMm) / gain;
    const top = row * L.rowMm * L.pxPerMm;
    const c = this.ctx;
    c.save();
    c.beginPath();
    c.rect(L.x0, top, L.cssW - L.x0, L.rowMm * L.pxPerMm);
    c.clip();
    c.beginPath();
    let pen = false;
    const a = Math.ceil(sFrom), b = Math.floor(sTo);
    for (let s = a; s <= b; s++) {
      const v = get(lead, s);
      if (v === MISSING) { pen = false; continue; }
      const x = xOf(s), y = y0 - (v - base) * k;
      if (pen) c.lineTo(x, y); else { c.moveTo(x, y); pen = true; }
    }
    c.strokeStyle = TRACE;
    c.lineWidth = 1.3;
    c.lineJoin = 'round';
    c.stroke();
    c.restore();
  }

  marker(x, cls) {
    const L = this.layout;
    const c = this.ctx;
    const colour = cls === 'V' ? BEAT_COLOURS.V : cls === 'N' ? BEAT_COLOURS.N : BEAT_COLOURS.other;
    c.fillStyle = colour;
    c.strokeStyle = colour;
    c.font = cls === 'V' ? '700 12px system-ui, sans-serif' : '600 11px system-ui, sans-serif';
    c.textAlign = 'center';
    c.textBaseline = 'top';
    c.fillText(cls === 'A' ? 'S' : cls, x, 1);
    c.lineWidth = cls === 'V' ? 2 : 1;
    L.shown.forEach((_, row) => {
      const top = (row * L.rowMm + MARKER_BAND_MM) * L.pxPerMm;
      c.beginPath();
      c.moveTo(x, top - (row === 0 ? 1.5 : 3) * L.pxPerMm);
      c.lineTo(x, top);
      c.stroke();
    });
  }

  band(xa, xb, label) {
    const L = this.layout;
    const c = this.ctx;
    if (xb <= xa) return;
    c.fillStyle = 'rgba(255, 171, 0, 0.22)';
    c.fillRect(xa, 0, xb - xa, L.cssH);
    if (label) {
      c.fillStyle = '#8a4b00';
      c.font = '600 11px system-ui, sans-serif';
      c.textAlign = 'left';
      c.textBaseline = 'bottom';
      c.fillText(label, xa + 2, L.cssH - 2);
    }
  }

  // Events arrived for samples already on screen: the next frame redraws
  // everything.
  invalidate() { this.needFull = true; }

  // A beat reported after its sample was drawn (the usual case: the detector
  // decides ~0.3 s after the R peak): its marker is drawn where it belongs,
  // without redrawing the strip.
  markLate(sample, cls) {
    const L = this.layout;
    const pos = this.drawnPos;
    if (!L || pos === null || this.drawnLayout !== L || sample > pos) return;
    const N = L.samplesPerSweep;
    const sweepStart = Math.floor(pos / N) * N;
    const xp = (pos - sweepStart) * L.pxPerSample;
    const bFrom = sweepStart - N + (xp / L.pxPerSample) + (ERASE_MM * L.pxPerMm) / L.pxPerSample;
    let x = NaN;
    if (sample >= sweepStart) x = L.x0 + (sample - sweepStart) * L.pxPerSample;
    else if (sample >= bFrom) x = L.x0 + (sample - (sweepStart - N)) * L.pxPerSample;
    if (Number.isFinite(x)) this.marker(x, cls);
  }

  // The sweep display at playout position pos (a fractional sample). Most
  // frames only add the few samples since the last frame (a monitor's sweep
  // does exactly that): the columns from the last drawn sample to the erase
  // bar's end are restored from the grid image and drawn again, clipped to
  // themselves, so the result is the same as a full redraw. A full redraw
  // happens when the sweep wraps, the layout changes, a beat or event
  // arrives, or the position jumps.
  drawSweep(ring, pos, beats, events) {
    const L = this.layout;
    if (!L) return;
    if (!Number.isFinite(pos)) {
      if (this.drawnPos !== null) { this.clear(); this.drawnPos = null; }
      return;
    }
    const N = L.samplesPerSweep;
    const last = this.drawnPos;
    const incremental = !this.needFull && last !== null && this.drawnLayout === L && pos >= last
      && Math.floor(pos / N) === Math.floor(last / N) && pos - last < L.fsHz;
    if (incremental) {
      if (Math.floor(pos) !== Math.floor(last)) this.sweepRegion(ring, pos, beats, events, Math.floor(last));
    } else {
      this.clear();
      this.sweepRegion(ring, pos, beats, events, null);
    }
    this.drawnPos = pos;
    this.drawnLayout = L;
    this.needFull = false;
  }

  // Draws the sweep at pos; fromSample null: the whole strip, else only the
  // columns from that sample to the end of the erase bar.
  sweepRegion(ring, pos, beats, events, fromSample) {
    const L = this.layout;
    const c = this.ctx;
    const N = L.samplesPerSweep;
    const sweepStart = Math.floor(pos / N) * N;
    const xp = (pos - sweepStart) * L.pxPerSample;
    const eraseSamples = (ERASE_MM * L.pxPerMm) / L.pxPerSample;
    // Segment A: this sweep, [sweepStart, pos]; segment B: the previous sweep
    // right of the erase bar.
    const aFrom = sweepStart, aTo = pos;
    const bFrom = sweepStart - N + (xp / L.pxPerSample) + eraseSamples, bTo = sweepStart - 1e-9;
    const xA = (s) => L.x0 + (s - sweepStart) * L.pxPerSample;
    const xB = (s) => L.x0 + (s - (sweepStart - N)) * L.pxPerSample;
    const xOf = (s) => (s >= aFrom && s <= aTo ? xA(s) : s >= bFrom && s <= bTo ? xB(s) : NaN);
    const eraseEnd = Math.min(L.x0 + xp + ERASE_MM * L.pxPerMm, L.x0 + L.sweepPx);

    let regionFrom = -Infinity;
    if (fromSample !== null) {
      regionFrom = xA(fromSample);
      const dpr = L.dpr;
      const dx = Math.max(0, Math.floor(regionFrom * dpr));
      const dw = Math.min(this.grid.width, Math.ceil(eraseEnd * dpr) + 1) - dx;
      if (dw <= 0) return;
      c.setTransform(1, 0, 0, 1, 0, 0);
      c.drawImage(this.grid, dx, 0, dw, this.grid.height, dx, 0, dw, this.grid.height);
      c.setTransform(dpr, 0, 0, dpr, 0, 0);
      c.save();
      c.beginPath();
      c.rect(dx / dpr, 0, dw / dpr, L.cssH);
      c.clip();
    }
    const inRegion = (from) => from >= (fromSample === null ? -Infinity : fromSample - 1);

    for (const ev of events) {
      const from = ev.sample, to = ev.end_sample == null ? pos : Math.min(ev.end_sample, pos);
      for (const [f, t, xf] of [[aFrom, aTo, xA], [bFrom, bTo, xB]]) {
        const lo = Math.max(from, f), hi = Math.min(to, t);
        if (hi > lo && (fromSample === null || hi >= fromSample)) this.band(xf(lo), xf(hi), lo === from ? ev.label || ev.kind : '');
      }
    }
    const get = (lead, s) => ring.get(lead, s);
    L.shown.forEach((lead, row) => {
      this.trace(get, lead, row, fromSample === null ? aFrom : Math.max(aFrom, fromSample - 1), aTo, xA);
      if (fromSample === null && bTo > bFrom) this.trace(get, lead, row, bFrom, bTo, xB);
    });
    // Markers near the region too: their labels are a few pixels wide.
    const margin = 10 / L.pxPerSample;
    for (let i = beats.length - 1; i >= 0; i--) {
      const b = beats[i];
      if (b.sample < Math.min(bFrom, aFrom)) break;
      if (b.sample > pos) continue;
      if (fromSample !== null && !inRegion(b.sample + margin)) break;
      const x = xOf(b.sample);
      if (Number.isFinite(x)) this.marker(x, b.cls);
    }
    // The erase bar itself: a slightly darker gap so the write position is obvious.
    c.fillStyle = 'rgba(40, 40, 60, 0.08)';
    if (eraseEnd > L.x0 + xp) c.fillRect(L.x0 + xp, 0, eraseEnd - (L.x0 + xp), L.cssH);
    if (fromSample !== null) c.restore();
  }

  // A fixed strip of samples [first, first + count) (the event strip).
  drawStatic(get, first, count, beats, onsetSample) {
    const L = this.layout;
    this.clear();
    const xOf = (s) => L.x0 + (s - first) * L.pxPerSample;
    L.shown.forEach((lead, row) => this.trace(get, lead, row, first, first + count - 1, xOf));
    for (const b of beats) {
      if (b.sample >= first && b.sample < first + count) this.marker(xOf(b.sample), b.cls);
    }
    if (Number.isFinite(onsetSample)) {
      const c = this.ctx;
      const x = xOf(onsetSample);
      c.strokeStyle = '#d50000';
      c.lineWidth = 1.5;
      c.setLineDash([4, 3]);
      c.beginPath(); c.moveTo(x, 0); c.lineTo(x, L.cssH); c.stroke();
      c.setLineDash([]);
      c.fillStyle = '#d50000';
      c.font = '600 11px system-ui, sans-serif';
      c.textAlign = 'left';
      c.textBaseline = 'bottom';
      c.fillText('onset', x + 3, L.cssH - 2);
    }
  }
}
