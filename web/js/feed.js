// The WebSocket to /ws/feed: one socket per tab, one source at a time.
//
// The socket is authenticated by the session cookie (a browser cannot set
// headers on a WebSocket). It reconnects by itself with a growing delay (1 s
// to 15 s) and re-sends the last subscription, so a server restart or a
// network blip costs a gap on the strip, not a dead screen. A text message is
// handed over as parsed JSON, a binary one as a parsed sample frame; anything
// malformed is reported through onProblem and dropped, never thrown into the
// drawing loop.

import { parseSampleFrame } from './samples.js';

export class Feed {
  constructor(handlers) {
    this.h = handlers;   // {onMessage, onFrame, onState, onProblem, resubscription?}
    this.ws = null;
    this.subscription = null;
    this.paused = false;
    this.closedByUs = false;
    this.retryMs = 1000;
    this.timer = null;
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/ws/feed`;
  }

  open() {
    this.closedByUs = false;
    clearTimeout(this.timer);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.h.onState('error', e.message);
      this.schedule();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.h.onState('connecting');
    ws.onopen = () => {
      this.retryMs = 1000;
      this.h.onState('open');
      // A replay resumes where the screen was, not at the record's start.
      if (this.subscription && this.h.resubscription) this.subscription = this.h.resubscription(this.subscription);
      if (this.subscription) this.send(this.subscription);
      if (this.paused) this.send({ type: 'pause' });
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { this.h.onProblem('feed: a text message that is not JSON'); return; }
        if (!msg || typeof msg.type !== 'string') { this.h.onProblem('feed: a message without a type'); return; }
        this.h.onMessage(msg);
      } else {
        let frame;
        try { frame = parseSampleFrame(ev.data); } catch (e) { this.h.onProblem(e.message); return; }
        this.h.onFrame(frame);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closedByUs) { this.h.onState('closed'); return; }
      this.h.onState('error', `feed closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''}), reconnecting`);
      this.schedule();
    };
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), this.retryMs);
    this.retryMs = Math.min(15000, this.retryMs * 2);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  subscribe(sub) {
    this.subscription = sub;
    this.paused = false;
    this.send(sub);
  }

  setPaused(paused) {
    this.paused = paused;
    this.send({ type: paused ? 'pause' : 'resume' });
  }

  setSpeed(value) {
    if (this.subscription) this.subscription = { ...this.subscription, speed: value };
    this.send({ type: 'speed', value });
  }

  close() {
    this.closedByUs = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'logout');
    this.ws = null;
  }
}
