// When the heart contracts: beats -> atrial and ventricular contraction.
//
// The heart is driven by the beats the detector reports, on the playout clock
// of the strip: everything here is a function of the stream sample being
// drawn, so pausing freezes it and a replay at 4x beats 4x as fast. The
// detector reports a beat about 0.3 s after its R peak, i.e. about 150 ms
// after the strip has drawn it, so:
//  - ventricular systole starts when the beat becomes known (at most a
//    fraction of the rise late) and lasts until about QT after the R peak
//    (Bazett: QT = 400 ms x sqrt(RR / 1 s), 300..460 ms), then relaxes;
//  - the atrial kick, which comes a PR interval (160 ms) BEFORE the R peak,
//    can only be shown by prediction: while the rhythm is regular (three
//    normal RR intervals within 20 % of each other, not AF) the next normal
//    R is expected one RR after the last normal beat (two after a PVC: the
//    compensatory pause) and the atria contract PR before it. No beat, no
//    prediction beyond two RR: asystole is still.
//  - a V beat has no atrial kick, a slower, weaker and asymmetric squeeze
//    (the renderer uses `kind`); in AF the atria quiver (4-9 Hz, irregular)
//    and never kick.
// Pure logic (no DOM), tested in node.

export const PR_MS = 160;
const ATRIAL_KICK_MS = 120;   // from PR before R to 40 ms before R
const RELAX_MS = 140;
const MAX_BEATS = 64;

function smooth(x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  return x * x * (3 - 2 * x);
}

export function qtMs(rrMs) {
  const rr = rrMs > 0 ? rrMs : 1000;
  return Math.max(300, Math.min(460, 400 * Math.sqrt(rr / 1000)));
}

export class HeartTimeline {
  constructor() {
    this.fsHz = 360;
    this.reset();
  }

  reset() {
    this.beats = [];      // {sample, cls, knownAt}, ascending
    this.af = false;
  }

  configure(fsHz) {
    this.fsHz = fsHz;
    this.reset();
  }

  setRhythm(label) {
    this.af = typeof label === 'string' && /^\((AFIB|AFL)/.test(label);
  }

  // knownAt: playout sample when the page learnt of the beat.
  addBeat(sample, cls, knownAt) {
    const b = { sample, cls: cls || 'Q', knownAt };
    const n = this.beats.length;
    if (n && this.beats[n - 1].sample >= sample) {
      if (this.beats.some((x) => x.sample === sample)) return;
      this.beats.push(b);
      this.beats.sort((x, y) => x.sample - y.sample);
    } else {
      this.beats.push(b);
    }
    if (this.beats.length > MAX_BEATS) this.beats.splice(0, this.beats.length - MAX_BEATS);
  }

  msToSamples(ms) { return (ms * this.fsHz) / 1000; }
  samplesToMs(s) { return (s * 1000) / this.fsHz; }

  // Median of the last normal-to-normal intervals (ms), or NaN when the
  // rhythm is not regular enough to predict the next P wave.
  regularRrMs(uptoIndex) {
    const rr = [];
    for (let i = uptoIndex; i > 0 && rr.length < 3; i--) {
      const a = this.beats[i - 1], b = this.beats[i];
      if (a.cls === 'V' || b.cls === 'V') {
        if (rr.length) break;
        continue;
      }
      rr.push(this.samplesToMs(b.sample - a.sample));
    }
    if (rr.length < 3) return NaN;
    const min = Math.min(...rr), max = Math.max(...rr);
    if (max > 1.2 * min || min < 250 || max > 2000) return NaN;
    rr.sort((x, y) => x - y);
    return rr[1];
  }

  // The state of the heart at playout sample pos.
  at(pos) {
    const out = { atria: 0, ventricles: 0, phase: 'diastole', kind: 'N', af: this.af, sinceBeatMs: NaN, ts: 0 };
    if (!Number.isFinite(pos)) return out;
    out.ts = this.samplesToMs(pos) / 1000;
    // Latest beat known and at or before pos.
    let i = -1;
    for (let k = this.beats.length - 1; k >= 0; k--) {
      const b = this.beats[k];
      if (b.sample <= pos && b.knownAt <= pos) { i = k; break; }
    }
    let ventricular = 0;
    if (i >= 0) {
      const b = this.beats[i];
      const prev = i > 0 ? this.beats[i - 1] : null;
      const rrMs = prev ? this.samplesToMs(b.sample - prev.sample) : 1000;
      const qt = qtMs(rrMs);
      const t = this.samplesToMs(pos - b.sample);
      const known = Math.max(0, this.samplesToMs(b.knownAt - b.sample));
      const isV = b.cls === 'V';
      out.kind = isV ? 'V' : 'N';
      out.sinceBeatMs = t;
      // A wide, dyssynchronous QRS squeezes more slowly and less.
      const riseMs = isV ? 0.55 * qt : 0.35 * qt;
      const peak = isV ? 0.75 : 1;
      const riseStart = Math.min(known, 0.6 * qt);
      const riseEnd = Math.max(riseMs, riseStart + 90);
      if (t < qt) {
        ventricular = peak * smooth((t - riseStart) / (riseEnd - riseStart));
        if (t >= riseStart) out.phase = 'ventricular-systole';
      } else if (t < qt + RELAX_MS) {
        const startLevel = peak * smooth((qt - riseStart) / (riseEnd - riseStart));
        ventricular = startLevel * (1 - smooth((t - qt) / RELAX_MS));
        out.phase = 'relaxation';
      }
    }
    out.ventricles = ventricular;

    if (this.af) {
      // Fibrillating atria: small, fast, never-repeating quiver; no kick.
      const ts = out.ts;
      const q = Math.sin(2 * Math.PI * 7.3 * ts) * Math.sin(2 * Math.PI * 4.1 * ts + 1.3)
        + 0.6 * Math.sin(2 * Math.PI * 9.7 * ts + 0.4) * Math.sin(2 * Math.PI * 1.7 * ts);
      out.atria = 0.06 + 0.05 * q;
      return out;
    }

    const kick = this.predictedKick(i, pos);
    if (kick > 0) {
      out.atria = kick;
      if (out.phase === 'diastole') out.phase = 'atrial-systole';
    }
    return out;
  }

  // Atrial contraction (0..1) expected at pos from the beats up to index i.
  predictedKick(i, pos) {
    if (i < 0) return 0;
    let lastN = i;
    while (lastN >= 0 && this.beats[lastN].cls === 'V') lastN--;
    if (lastN < 0) return 0;
    const rr = this.regularRrMs(lastN);
    if (!Number.isFinite(rr)) return 0;
    const rrS = this.msToSamples(rr);
    const last = this.beats[i].sample;
    // Next normal R: one RR after the last normal beat, or two after it when a
    // PVC came in between (it sits in the refractory period of the first).
    let k = 1;
    let next = this.beats[lastN].sample + rrS;
    while (next - last < 0.6 * rrS && k < 2) { k++; next += rrS; }
    if (next - last < 0.6 * rrS) return 0;
    const startS = next - this.msToSamples(PR_MS);
    const x = (pos - startS) / this.msToSamples(ATRIAL_KICK_MS);
    if (x <= 0 || x >= 1) return 0;
    return Math.sin(Math.PI * x) * 0.9;
  }
}
