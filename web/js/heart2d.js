// The heart without WebGL: a 2D pulse on a canvas.
//
// Same input as the 3D heart (HeartTimeline.at()), drawn as two atria above
// a ventricular outline, each shrinking with its contraction, so a clinician
// on a machine without WebGL still sees the kick, the squeeze and their
// timing. Cheap enough to redraw every frame.

export function createHeart2D(canvas) {
  const ctx = canvas.getContext('2d');

  function size() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, canvas.clientWidth), h = Math.max(100, canvas.clientHeight);
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return [w, h];
  }

  function update(state) {
    const [w, h] = size();
    ctx.fillStyle = '#10141c';
    ctx.fillRect(0, 0, w, h);
    const cx = w / 2, unit = Math.min(w, h) / 6;
    const v = state.ventricles;
    let aL = state.atria, aR = state.atria;
    if (state.af) aL = 0.06 + 0.05 * Math.sin(2 * Math.PI * 6.1 * state.ts + 2.1) * Math.sin(2 * Math.PI * 3.3 * state.ts);
    // Atria.
    ctx.fillStyle = '#c25b55';
    for (const [dx, a] of [[-1, aR], [1, aL]]) {
      ctx.beginPath();
      ctx.ellipse(cx + dx * unit * 0.9, h * 0.3, unit * 0.8 * (1 - 0.2 * a), unit * 0.6 * (1 - 0.2 * a), 0, 0, Math.PI * 2);
      ctx.fill();
    }
    // Ventricles: a heart outline hanging from the base line, shortening
    // towards it; a PVC leans sideways.
    const s = 1 - 0.14 * v;
    const lean = state.kind === 'V' ? 0.12 * v : 0;
    const baseY = h * 0.42;
    ctx.save();
    ctx.translate(cx, baseY);
    ctx.rotate(lean);
    ctx.scale(s, 1 - 0.1 * v);
    ctx.beginPath();
    ctx.moveTo(-unit * 1.7, 0);
    ctx.bezierCurveTo(-unit * 1.9, unit * 1.4, -unit * 0.6, unit * 2.4, 0, unit * 3);
    ctx.bezierCurveTo(unit * 0.6, unit * 2.4, unit * 1.9, unit * 1.4, unit * 1.7, 0);
    ctx.closePath();
    ctx.fillStyle = state.kind === 'V' ? '#b8452f' : '#a83232';
    ctx.fill();
    ctx.strokeStyle = '#e7a09a';
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(0, unit * 0.1);
    ctx.lineTo(0, unit * 2.5);
    ctx.stroke();
    ctx.restore();
    ctx.fillStyle = '#c9d1d9';
    ctx.font = '12px system-ui, sans-serif';
    ctx.textBaseline = 'bottom';
    ctx.fillText('2D view (WebGL unavailable)', 8, h - 6);
  }

  return { update, setAutoRotate() {}, resetView() {}, onContextLost() {}, dispose() {} };
}
