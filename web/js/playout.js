// The playout clock: which stream sample is "now" on the screen.
//
// Samples arrive in bursts: a replay every 100 ms, a live patient whenever its
// gateway posts (the demo posts one second at a time). Drawing them as they
// come would make the trace jump, so the clock runs at the stream's own rate
// (fs_hz x replay speed) a little behind the newest sample received: a jitter
// buffer. The one idea is how far behind: the clock watches how much is still
// buffered just before each burst lands (the low point of the buffer) and
// steers its pace by at most +-3 % to keep that low point near `floorMs`
// (100 ms). With 100 ms bursts the buffer then swings between 100 and 200 ms
// (about 150 ms on average); with one-second bursts it learns a deeper buffer
// by itself: when data is late the trace stops where the data ends (it never
// invents samples) and, once data is back, waits `floorMs` more, so the next
// burst finds that much still in hand. A buffer far too deep (a tab that
// slept, a network that delivered seconds at once) is cut back in one jump.
// The strip, the beat markers and the heart all read position(), so pausing
// the clock freezes all of them together. Pure logic (no DOM), tested in node.

export class PlayoutClock {
  constructor({ floorMs = 100, startMs = 150, maxSteer = 0.03, resyncMs = 2500 } = {}) {
    this.floorMs = floorMs;
    this.startMs = startMs;
    this.maxSteer = maxSteer;
    this.resyncMs = resyncMs;
    this.fsHz = 0;
    this.speed = 1;
    this.reset();
  }

  reset() {
    this.anchored = false;
    this.anchorPos = 0;     // sample at anchorT
    this.anchorT = 0;       // local ms; position holds still before it
    this.steer = 1;         // rate factor from the servo
    this.newest = 0;        // one past the newest sample received
    this.lowMs = NaN;       // lower envelope of the buffer just before bursts
    this.paused = false;
    this.pausedPos = 0;
  }

  configure(fsHz, speed) {
    if (!(fsHz > 0)) throw new Error(`playout: fs_hz ${fsHz} invalid`);
    this.fsHz = fsHz;
    this.speed = speed > 0 ? speed : 1;
  }

  // Samples of stream per local millisecond, before steering.
  rate() { return (this.fsHz * this.speed) / 1000; }

  setSpeed(speed, nowMs) {
    const s = speed > 0 ? speed : 1;
    if (this.anchored && !this.paused && nowMs !== undefined) this.reanchor(Math.max(nowMs, this.anchorT), this.position(nowMs));
    this.speed = s;
  }

  reanchor(atMs, pos) {
    this.anchorPos = pos;
    this.anchorT = atMs;
  }

  unclamped(nowMs) {
    return this.anchorPos + Math.max(0, nowMs - this.anchorT) * this.rate() * this.steer;
  }

  // How much is buffered (ms of playing time) at local time nowMs.
  bufferedMs(nowMs) {
    return this.anchored ? (this.newest - this.position(nowMs)) / this.rate() : NaN;
  }

  // Called when samples up to `newestExclusive` have arrived.
  onData(newestExclusive, nowMs) {
    const before = this.newest;
    this.newest = Math.max(this.newest, newestExclusive);
    if (!this.anchored) {
      this.anchored = true;
      this.reanchor(nowMs, this.newest - this.startMs * this.rate());
      this.lowMs = this.floorMs;
      return;
    }
    if (this.paused || this.newest === before) return;
    if (nowMs < this.anchorT) return;   // still waiting out an underrun
    const raw = this.unclamped(nowMs);
    if (raw >= before) {
      // Underrun: the trace stood at `before`. Wait floorMs more before
      // moving on, so the next burst finds that much in hand.
      this.reanchor(nowMs + this.floorMs, before);
      this.steer = 1;
      this.lowMs = this.floorMs;
      return;
    }
    const lowMs = (before - raw) / this.rate();
    if (lowMs > this.resyncMs) {
      this.reanchor(nowMs, this.newest - this.startMs * this.rate());
      this.steer = 1;
      this.lowMs = this.floorMs;
      return;
    }
    // Lower envelope: follows a drop at once, a rise slowly.
    this.lowMs = lowMs < this.lowMs ? lowMs : this.lowMs + 0.05 * (lowMs - this.lowMs);
    // Proportional steering: 100 ms more in hand than wanted -> 1 % faster.
    const want = 1 + Math.max(-this.maxSteer, Math.min(this.maxSteer, (this.lowMs - this.floorMs) / 10000));
    if (want !== this.steer) {
      this.reanchor(nowMs, raw);
      this.steer = want;
    }
  }

  // The sample (fractional) to draw at local time nowMs; never past the
  // newest sample received.
  position(nowMs) {
    if (!this.anchored) return NaN;
    if (this.paused) return this.pausedPos;
    return Math.min(this.unclamped(nowMs), this.newest);
  }

  pause(nowMs) {
    if (this.paused) return;
    this.pausedPos = this.anchored ? this.position(nowMs) : 0;
    this.paused = true;
  }

  // live: the source kept going while paused, so jump back to the live edge;
  // replay: the server stopped too, so continue from where the screen froze.
  resume(nowMs, live) {
    if (!this.paused) return;
    this.paused = false;
    if (!this.anchored) return;
    if (live) this.reanchor(nowMs, this.newest - this.startMs * this.rate());
    else this.reanchor(nowMs, this.pausedPos);
    this.steer = 1;
    this.lowMs = this.floorMs;
  }
}
