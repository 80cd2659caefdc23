// Alerts: the banner, the list, acknowledgment and the review of one alert.
//
// Alerts come from GET /api/alerts when a patient is opened and then from the
// feed as they open, change and end. The banner shows the most urgent open
// alert in its IEC 60601-1-8 colour; it flashes until someone acknowledges it
// (acknowledging silences, it does not hide: the alert stays visible while
// its condition lasts). New alerts are announced to screen readers, high
// priority ones interrupting. Replayed records' alerts have no id: they come
// from the same policy but were never stored, so they cannot be acknowledged.

import { StripView } from './strip.js';

const RANK = { high: 3, medium: 2, low: 1 };
const RULE_NAMES = {
  hr_high: 'High heart rate', hr_low: 'Low heart rate', pause: 'Pause', asystole: 'Asystole',
  ventricular_run: 'Ventricular run', afib: 'Atrial fibrillation', pvc_burden: 'PVC burden',
  signal_loss: 'Signal loss',
};

export function alertKey(a) {
  return a.id != null ? `id:${a.id}` : `rule:${a.rule}@${a.onset_ms}`;
}

function fmtTime(ms) {
  if (!Number.isFinite(ms)) return '--';
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

function download(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

export class AlertPanel {
  constructor({ api, q, settings, localStrip, onError }) {
    this.api = api;
    this.q = q;
    this.settings = settings;        // () => {pxPerMm, mmPerMv}
    this.localStrip = localStrip;    // (fromMs, toMs) => strip | null
    this.onError = onError;
    this.alerts = new Map();
    this.items = new Map();
    this.source = null;
    this.generation = 0;
    this.review = { alert: null, report: null };
    this.eventStrip = new StripView(q('event-strip-canvas'));
    q('review-close-button').addEventListener('click', () => q('review-dialog').close());
    q('export-png-button').addEventListener('click', () => this.exportPng());
    q('export-json-button').addEventListener('click', () => this.exportJson());
  }

  async setSource(source) {
    this.generation++;
    const gen = this.generation;
    this.source = source;
    this.alerts.clear();
    for (const li of this.items.values()) li.remove();
    this.items.clear();
    this.render();
    if (source && source.source === 'patient') {
      try {
        const res = await this.api.alerts(source.id);
        if (gen !== this.generation) return;
        for (const a of (res.alerts || []).slice().reverse()) this.upsert(a, false);
        this.render();
        // Someone opening a patient hears what is open right now.
        const open = this.sorted().filter((a) => a.state === 'open');
        if (open.length) {
          open.sort((x, y) => (RANK[y.priority] || 0) - (RANK[x.priority] || 0));
          this.announce(open[0], open.length > 1 ? ` ${open.length} open alerts in all.` : '');
        }
      } catch (e) {
        this.onError(`alerts of ${source.id}: ${e.message}`);
      }
    }
  }

  // An alert from the feed (announce) or from a list (quiet).
  upsert(a, announce = true) {
    if (!a || typeof a.rule !== 'string') return;
    const key = alertKey(a);
    const before = this.alerts.get(key);
    this.alerts.set(key, a);
    if (announce && a.state === 'open' && (!before || before.state !== 'open')) this.announce(a);
    if (this.alerts.size > 200) {
      const oldest = [...this.alerts.entries()].sort((x, y) => x[1].onset_ms - y[1].onset_ms)[0][0];
      this.alerts.delete(oldest);
    }
  }

  onFeedAlert(a) {
    this.upsert(a, true);
    this.render();
  }

  announce(a, more = '') {
    const text = `${a.priority} priority alert: ${this.title(a)}. ${a.summary || ''}${more}`;
    const el = this.q(a.priority === 'high' ? 'alert-announcer-high' : 'alert-announcer');
    // Clearing first makes a repeated text be announced again.
    el.textContent = '';
    setTimeout(() => { el.textContent = text; }, 50);
  }

  title(a) { return RULE_NAMES[a.rule] || a.rule; }

  sorted() {
    return [...this.alerts.values()].sort((x, y) => (y.onset_ms || 0) - (x.onset_ms || 0));
  }

  render() {
    const list = this.q('alert-list');
    const all = this.sorted();
    this.q('alert-empty').hidden = all.length > 0;
    const keep = new Set();
    let prev = null;
    for (const a of all) {
      const key = alertKey(a);
      keep.add(key);
      let li = this.items.get(key);
      if (!li) { li = this.makeItem(key); this.items.set(key, li); }
      this.fillItem(li, a);
      if (prev ? prev.nextSibling !== li : list.firstChild !== li) {
        if (prev) prev.after(li); else list.prepend(li);
      }
      prev = li;
    }
    for (const [key, li] of this.items) if (!keep.has(key)) { li.remove(); this.items.delete(key); }
    this.renderBanner(all);
  }

  makeItem(key) {
    const li = document.createElement('li');
    li.className = 'alert-item';
    li.dataset.testid = 'alert-item';
    li.setAttribute('data-testid', 'alert-item');
    li.dataset.key = key;
    const title = document.createElement('p');
    title.className = 'alert-title';
    const summary = document.createElement('p');
    summary.className = 'alert-summary';
    const meta = document.createElement('p');
    meta.className = 'alert-meta';
    const buttons = document.createElement('div');
    buttons.className = 'buttons';
    const ack = document.createElement('button');
    ack.type = 'button';
    ack.textContent = 'Acknowledge';
    ack.setAttribute('data-testid', 'alert-ack-button');
    ack.addEventListener('click', () => this.acknowledge(key, ack));
    const rev = document.createElement('button');
    rev.type = 'button';
    rev.textContent = 'Review';
    rev.setAttribute('data-testid', 'alert-review-button');
    rev.addEventListener('click', () => this.openReview(key));
    buttons.append(ack, rev);
    li.append(title, summary, meta, buttons);
    return li;
  }

  fillItem(li, a) {
    li.dataset.priority = a.priority;
    li.dataset.state = a.state;
    li.dataset.acknowledged = a.acknowledged ? 'true' : 'false';
    if (a.id != null) li.dataset.alertId = String(a.id);
    const [title, summary, meta, buttons] = li.children;
    title.textContent = `${a.priority.toUpperCase()} · ${this.title(a)}${a.state !== 'open' ? ' (ended)' : ''}`;
    summary.textContent = a.summary || '';
    let m = `onset ${fmtTime(a.onset_ms)}`;
    if (a.end_ms) m += ` · ended ${fmtTime(a.end_ms)}`;
    if (a.acknowledged) m += ` · acknowledged by ${a.acknowledged_by || 'someone'} ${fmtTime(a.acknowledged_ms)}`;
    if (a.id == null) m += ' · replayed record';
    meta.textContent = m;
    const [ack, rev] = buttons.children;
    ack.disabled = a.id == null || !!a.acknowledged;
    ack.textContent = a.acknowledged ? 'Acknowledged' : 'Acknowledge';
    ack.setAttribute('aria-label', `Acknowledge ${a.priority} priority alert: ${this.title(a)}`);
    rev.setAttribute('aria-label', `Review alert: ${this.title(a)}`);
    rev.disabled = !a.report_id && !(this.source && this.source.source === 'patient') && !this.localStrip(a.onset_ms - 10000, a.onset_ms + 10000);
  }

  renderBanner(all) {
    const banner = this.q('alert-banner');
    const text = this.q('alert-banner-text');
    const open = all.filter((a) => a.state === 'open');
    open.sort((x, y) => (RANK[y.priority] || 0) - (RANK[x.priority] || 0) || (y.onset_ms || 0) - (x.onset_ms || 0));
    const top = open[0];
    if (!top) {
      banner.dataset.priority = 'none';
      banner.dataset.flash = 'off';
      text.textContent = 'No active alerts';
      return;
    }
    banner.dataset.priority = top.priority;
    banner.dataset.flash = top.acknowledged ? 'off' : 'on';
    const more = open.length > 1 ? ` (+${open.length - 1} more)` : '';
    text.textContent = `${top.priority.toUpperCase()}: ${this.title(top)}. ${top.summary || ''}${top.acknowledged ? ' (acknowledged)' : ''}${more}`;
  }

  async acknowledge(key, button) {
    const a = this.alerts.get(key);
    if (!a || a.id == null) return;
    button.disabled = true;
    try {
      const updated = await this.api.acknowledge(a.id);
      this.upsert(updated && updated.rule ? updated : { ...a, acknowledged: true }, false);
    } catch (e) {
      if (e.status === 409) {
        this.upsert({ ...a, acknowledged: true }, false);
        this.onError(e.message);
      } else {
        this.onError(`acknowledge: ${e.message}`);
      }
    }
    this.render();
    const li = this.items.get(key);
    // Keep the keyboard user where they were.
    if (li) li.querySelector('[data-testid="alert-review-button"]').focus();
  }

  async openReview(key) {
    const a = this.alerts.get(key);
    if (!a) return;
    const q = this.q;
    const dlg = q('review-dialog');
    this.review = { alert: a, report: null };
    q('review-error').textContent = '';
    q('report-view').replaceChildren();
    q('report-json').textContent = '';
    q('export-json-button').disabled = true;
    q('export-png-button').disabled = true;
    q('review-title').textContent = `Alert review: ${this.title(a)} (${a.priority})`;
    if (!dlg.open) dlg.showModal();
    const problems = [];
    const jobs = [];
    if (a.report_id) {
      jobs.push(this.api.report(a.report_id).then((r) => {
        this.review.report = r;
        this.showReport(r);
        q('export-json-button').disabled = false;
      }).catch((e) => problems.push(`report: ${e.message}`)));
    } else {
      problems.push('no DiagnosticReport is stored for this alert');
    }
    const from = a.onset_ms - 10000, to = a.onset_ms + 10000;
    let stripP;
    if (this.source && this.source.source === 'patient') stripP = this.api.strip(this.source.id, from, to);
    else stripP = Promise.resolve(this.localStrip(from, to));
    jobs.push(stripP.then((s) => {
      if (!s) throw new Error('the samples around the onset are no longer on this page');
      this.showStrip(s, a.onset_ms);
      q('export-png-button').disabled = false;
    }).catch((e) => problems.push(`event strip: ${e.message}`)));
    await Promise.all(jobs);
    if (this.review.alert === a) q('review-error').textContent = problems.join('; ');
  }

  showReport(r) {
    const dl = this.q('report-view');
    const rows = [];
    const codingText = (cc) => {
      if (!cc) return '';
      if (cc.text) return cc.text;
      return (cc.coding || []).map((c) => `${c.display || c.code}${c.code ? ` (${c.system && c.system.includes('snomed') ? 'SNOMED CT ' : ''}${c.code})` : ''}`).join(', ');
    };
    rows.push(['Report', `DiagnosticReport/${r.id || '?'}${r.meta && r.meta.versionId ? ` version ${r.meta.versionId}` : ''}`]);
    rows.push(['Status', r.status || '']);
    rows.push(['Test', codingText(r.code)]);
    if (r.subject) rows.push(['Patient', r.subject.display || r.subject.reference || '']);
    if (r.effectiveDateTime) rows.push(['Effective', fmtTime(Date.parse(r.effectiveDateTime))]);
    if (r.effectivePeriod) {
      const p = r.effectivePeriod;
      rows.push(['Effective', `${p.start ? fmtTime(Date.parse(p.start)) : '?'} to ${p.end ? fmtTime(Date.parse(p.end)) : 'ongoing'}`]);
    }
    if (r.issued) rows.push(['Issued', fmtTime(Date.parse(r.issued))]);
    if (r.conclusion) rows.push(['Conclusion', r.conclusion]);
    for (const cc of r.conclusionCode || []) rows.push(['Finding', codingText(cc)]);
    for (const ref of r.result || []) rows.push(['Result', ref.display || ref.reference || '']);
    for (const ref of r.performer || []) rows.push(['Performer', ref.display || ref.reference || '']);
    for (const [k, v] of rows) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dl.append(dt, dd);
    }
    this.q('report-json').textContent = JSON.stringify(r, null, 2);
  }

  // s: the /api/strip answer (samples per lead, null for missing).
  showStrip(s, onsetMs) {
    const { pxPerMm, mmPerMv } = this.settings();
    const leads = s.leads || [];
    const samples = s.samples || [];
    const count = Math.max(0, ...samples.map((x) => (Array.isArray(x) ? x.length : 0)));
    if (!(s.fs_hz > 0) || !leads.length || !count) throw new Error('no samples stored over this span');
    const first = s.first_sample || 0;
    this.eventStrip.setLayout({
      pxPerMm, mmPerS: 25, mmPerMv, windowS: count / s.fs_hz, fsHz: s.fs_hz, leads,
      shown: leads.map((_, i) => i),
    });
    const get = (lead, idx) => {
      const arr = samples[lead];
      const v = arr ? arr[idx - first] : null;
      return v == null ? -32768 : v;
    };
    // t0_ms is the time of the stream's sample 0, first_sample the index of samples[*][0].
    const onsetSample = ((onsetMs - s.t0_ms) * s.fs_hz) / 1000;
    this.eventStrip.drawStatic(get, first, count, s.beats || [], onsetSample);
  }

  exportPng() {
    const a = this.review.alert;
    if (!a) return;
    this.q('event-strip-canvas').toBlob((blob) => {
      if (blob) download(blob, `cardiotwin-alert-${a.id ?? a.rule}-${a.onset_ms}-strip.png`);
    }, 'image/png');
  }

  exportJson() {
    const r = this.review.report;
    if (!r) return;
    download(new Blob([JSON.stringify(r, null, 2)], { type: 'application/fhir+json' }), `DiagnosticReport-${r.id}.json`);
  }
}
