// Sample frames off the WebSocket and the buffer they land in.
//
// The server sends binary frames ('S', version 1, docs/dashboard.md): a
// 24-byte header and then int16 samples, frame-major. The one idea: every
// sample is addressed by its stream index (sample number since the start of
// the stream), never by arrival time, so the strip, the beat markers and the
// heart all look things up by the same index and cannot drift apart.
// This module has no DOM dependency so that node can test it.

export const MISSING = -32768;
const HEADER_BYTES = 24;
// A frame larger than this is refused rather than allocated: 16 leads x 10 s at 1 kHz.
const MAX_FRAME_VALUES = 16 * 10 * 1000;

// Parses one binary frame. Throws an Error naming the field at fault.
export function parseSampleFrame(buf) {
  if (!(buf instanceof ArrayBuffer)) throw new Error('sample frame: not binary data');
  if (buf.byteLength < HEADER_BYTES) throw new Error(`sample frame: ${buf.byteLength} bytes, header needs ${HEADER_BYTES}`);
  const dv = new DataView(buf);
  const kind = dv.getUint8(0);
  const version = dv.getUint8(1);
  if (kind !== 0x53) throw new Error(`sample frame: kind 0x${kind.toString(16)}, expected 0x53`);
  if (version !== 1) throw new Error(`sample frame: version ${version}, expected 1`);
  const nLeads = dv.getUint16(2, true);
  const nFrames = dv.getUint32(4, true);
  const firstSample = Number(dv.getBigInt64(8, true));
  const serverMs = dv.getFloat64(16, true);
  if (nLeads < 1 || nLeads > 16) throw new Error(`sample frame: n_leads ${nLeads} outside 1..16`);
  const values = nLeads * nFrames;
  if (values > MAX_FRAME_VALUES) throw new Error(`sample frame: ${values} samples, limit ${MAX_FRAME_VALUES}`);
  if (buf.byteLength !== HEADER_BYTES + 2 * values) {
    throw new Error(`sample frame: ${buf.byteLength} bytes, header promises ${HEADER_BYTES + 2 * values}`);
  }
  if (!Number.isSafeInteger(firstSample) || firstSample < 0) throw new Error(`sample frame: first_sample ${firstSample} invalid`);
  const samples = new Int16Array(values);
  for (let i = 0; i < values; i++) samples[i] = dv.getInt16(HEADER_BYTES + 2 * i, true);
  return { nLeads, nFrames, firstSample, serverMs, samples };
}

// Ring of the last `capacity` frames of every lead, indexed by stream sample.
// Appending is O(frames); lookup is O(1). Chunks remember when the server
// received them so the page can report its delay.
export class SampleRing {
  constructor(nLeads, capacity) {
    this.nLeads = nLeads;
    this.capacity = capacity;
    this.data = new Int16Array(nLeads * capacity).fill(MISSING);
    this.start = 0;   // oldest sample held (inclusive)
    this.end = 0;     // one past the newest sample held
    this.chunks = []; // {first, end, serverMs}, oldest first
  }

  reset(firstSample) {
    this.data.fill(MISSING);
    this.start = firstSample;
    this.end = firstSample;
    this.chunks.length = 0;
  }

  // Appends a parsed frame. A frame that leaves a gap after the newest sample
  // leaves the gap as missing samples; one that overlaps is written over.
  push(frame) {
    if (frame.nLeads !== this.nLeads) throw new Error(`sample frame: ${frame.nLeads} leads, stream has ${this.nLeads}`);
    const first = frame.firstSample;
    const end = first + frame.nFrames;
    if (this.end === this.start && this.chunks.length === 0) { this.start = first; this.end = first; }
    if (first > this.end) {
      // Clear the gap so old values at those ring positions are not shown.
      const gapFrom = Math.max(this.end, end - this.capacity);
      for (let s = gapFrom; s < first; s++) this.clearFrame(s);
    }
    for (let f = 0; f < frame.nFrames; f++) {
      const s = first + f;
      if (s < end - this.capacity) continue;
      const base = (s % this.capacity) * this.nLeads;
      for (let l = 0; l < this.nLeads; l++) this.data[base + l] = frame.samples[f * this.nLeads + l];
    }
    if (end > this.end) this.end = end;
    if (first < this.start) this.start = Math.max(first, this.end - this.capacity);
    if (this.end - this.start > this.capacity) this.start = this.end - this.capacity;
    this.chunks.push({ first, end, serverMs: frame.serverMs });
    while (this.chunks.length > 0 && this.chunks[0].end <= this.start) this.chunks.shift();
  }

  clearFrame(s) {
    const base = (s % this.capacity) * this.nLeads;
    for (let l = 0; l < this.nLeads; l++) this.data[base + l] = MISSING;
  }

  has(s) { return s >= this.start && s < this.end; }

  get(lead, s) {
    if (s < this.start || s >= this.end) return MISSING;
    return this.data[(s % this.capacity) * this.nLeads + lead];
  }

  // server_ms of the chunk that holds sample s, or NaN.
  serverMsAt(s) {
    const c = this.chunks;
    let lo = 0, hi = c.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid].end <= s) lo = mid + 1;
      else if (c[mid].first > s) hi = mid - 1;
      else return c[mid].serverMs;
    }
    return NaN;
  }
}
