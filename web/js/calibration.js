// Screen calibration: how many CSS pixels make one millimetre on this screen.
//
// Browsers assume 96 px per inch, which is rarely true; an ECG measured with
// calipers on the screen must be at true scale, so the user matches a ruler
// to a credit card (ISO/IEC 7810 ID-1: 85.60 mm wide) and the result is kept
// in localStorage for this browser.

import { DEFAULT_PX_PER_MM } from './strip.js';

const KEY = 'cardiotwin.pxPerMm';
export const CARD_WIDTH_MM = 85.6;
const MIN = 2, MAX = 12;

export function loadPxPerMm() {
  try {
    const v = Number(localStorage.getItem(KEY));
    if (Number.isFinite(v) && v >= MIN && v <= MAX) return v;
  } catch { /* storage disabled: use the default */ }
  return DEFAULT_PX_PER_MM;
}

export function savePxPerMm(v) {
  try {
    if (v === null) localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, String(v));
  } catch { /* storage disabled: the setting lasts for this page only */ }
}

// Wires the calibration dialog; onChange(pxPerMm) after Save or Default.
export function setupCalibration(dialog, q, current, onChange) {
  const ruler = q('calibrate-ruler');
  const range = q('calibrate-range');
  const out = q('calibrate-value');
  let value = current();
  const show = () => {
    ruler.style.width = `${(CARD_WIDTH_MM * value).toFixed(1)}px`;
    range.value = String(value);
    out.textContent = `${value.toFixed(2)} px/mm (${(value * 25.4).toFixed(0)} px per inch)`;
  };
  const set = (v) => { value = Math.min(MAX, Math.max(MIN, v)); show(); };
  range.min = String(MIN);
  range.max = String(MAX);
  range.addEventListener('input', () => set(Number(range.value)));
  q('calibrate-smaller').addEventListener('click', () => set(value - 0.02));
  q('calibrate-larger').addEventListener('click', () => set(value + 0.02));
  q('calibrate-reset').addEventListener('click', () => {
    savePxPerMm(null);
    set(DEFAULT_PX_PER_MM);
    onChange(DEFAULT_PX_PER_MM);
  });
  q('calibrate-save').addEventListener('click', () => {
    savePxPerMm(value);
    onChange(value);
    dialog.close();
  });
  q('calibrate-cancel').addEventListener('click', () => dialog.close());
  return {
    open() { value = current(); show(); dialog.showModal(); range.focus(); },
  };
}
