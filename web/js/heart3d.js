// The 3D heart: built from primitives at load time, moved by the heart timeline.
//
// No model file: the ventricles are lathe surfaces (a left ventricle reaching
// the apex, a right ventricle wrapped in front of it and ending higher), cut
// open at the front so the interventricular septum between them is visible;
// the atria are flattened spheres with their appendages; the great vessels
// are tubes along spline curves. The one idea: each chamber group has its
// pivot where it hangs from the fibrous skeleton (the base, at y = 0), so a
// contraction is just a scale of that group: the apex rises towards the base
// and the walls thicken inwards, as longitudinal and radial shortening do.
// A PVC squeezes the two ventricles out of step and twists the mass sideways;
// normal beats twist it slightly the other way (left-ventricular torsion).
// three.js is loaded only when WebGL 2 is there (see main.js).

const COLOURS = {
  ventricle: 0xa83232,
  atrium: 0xc25b55,
  septum: 0xe7a09a,
  artery: 0xcc3333,
  pulmonaryArtery: 0x3f5fa8,
  vein: 0x34508f,
  pulmonaryVein: 0xb84a6a,
};

function lathe(THREE, profile, material, phiStart = 0, phiLength = Math.PI * 2) {
  const pts = profile.map(([r, y]) => new THREE.Vector2(r, y));
  return new THREE.Mesh(new THREE.LatheGeometry(pts, 48, phiStart, phiLength), material);
}

function tube(THREE, points, radius, colour) {
  const curve = new THREE.CatmullRomCurve3(points.map(([x, y, z]) => new THREE.Vector3(x, y, z)));
  const mat = new THREE.MeshLambertMaterial({ color: colour });
  return new THREE.Mesh(new THREE.TubeGeometry(curve, 48, radius, 16, false), mat);
}

// A sphere pushed into an atrium's shape: flattened, with a bulge where the
// appendage grows out.
function atrium(THREE, radius, material, appendageDir) {
  const g = new THREE.SphereGeometry(radius, 32, 24);
  const p = g.attributes.position;
  const v = new THREE.Vector3();
  const dir = new THREE.Vector3(...appendageDir).normalize();
  for (let i = 0; i < p.count; i++) {
    v.fromBufferAttribute(p, i);
    const n = v.clone().normalize();
    const bulge = Math.max(0, n.dot(dir)) ** 4 * 0.45;
    v.multiplyScalar(1 + bulge);
    v.y *= 0.8;
    p.setXYZ(i, v.x, v.y, v.z);
  }
  g.computeVertexNormals();
  return new THREE.Mesh(g, material);
}

export async function createHeart3D(container) {
  const THREE = await import('/vendor/three/three.module.js');
  const { OrbitControls } = await import('/vendor/three/OrbitControls.js');

  const renderer = new THREE.WebGLRenderer({ antialias: false, powerPreference: 'low-power' });
  // Software renderers (no GPU) pay for every pixel: never more than one per CSS pixel.
  renderer.setPixelRatio(1);
  renderer.setClearColor(0x10141c, 1);
  container.appendChild(renderer.domElement);
  renderer.domElement.setAttribute('data-testid', 'heart-canvas');
  renderer.domElement.setAttribute('role', 'img');
  renderer.domElement.setAttribute('aria-label', 'Three-dimensional heart, contracting with the detected beats');
  renderer.domElement.tabIndex = 0;   // orbit with the keyboard's arrow keys once focused

  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xfff1ee, 0x302028, 1.6));
  const key = new THREE.DirectionalLight(0xffffff, 2.2);
  key.position.set(3, 4, 5);
  scene.add(key);
  const rim = new THREE.DirectionalLight(0x88aaff, 0.8);
  rim.position.set(-4, 1, -3);
  scene.add(rim);

  const camera = new THREE.PerspectiveCamera(35, 1, 0.1, 50);
  camera.position.set(0, 0.2, 5.4);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.set(0, 0.1, 0);
  controls.enableDamping = true;
  controls.minDistance = 2.5;
  controls.maxDistance = 14;
  controls.autoRotateSpeed = 1.5;
  controls.listenToKeyEvents(renderer.domElement);
  controls.update();
  controls.saveState();

  const muscle = new THREE.MeshLambertMaterial({ color: COLOURS.ventricle, side: THREE.DoubleSide });
  const atrialMuscle = new THREE.MeshLambertMaterial({ color: COLOURS.atrium });
  const septumMat = new THREE.MeshLambertMaterial({ color: COLOURS.septum, side: THREE.DoubleSide });

  // Whole heart, tilted so the apex points down and to the patient's left
  // (the viewer's right in an anterior view).
  const heart = new THREE.Group();
  heart.rotation.z = 0.45;
  heart.rotation.y = -0.25;
  heart.position.y = 0.35;
  scene.add(heart);

  const ventricles = new THREE.Group();
  heart.add(ventricles);
  // The window cut in each lathe faces the viewer (+z): lathe angle 0 is +z.
  const cut = 0.9;
  const lv = new THREE.Group();
  lv.position.set(0.28, 0, -0.12);
  lv.add(lathe(THREE, [[0.0, 0.02], [0.5, 0.0], [0.6, -0.55], [0.5, -1.15], [0.28, -1.55], [0.0, -1.72]],
    muscle, cut / 2, Math.PI * 2 - cut));
  ventricles.add(lv);
  const rv = new THREE.Group();
  rv.position.set(-0.3, 0, 0.18);
  rv.scale.set(1, 1, 0.75);
  rv.add(lathe(THREE, [[0.0, 0.02], [0.46, 0.0], [0.55, -0.45], [0.42, -0.95], [0.15, -1.3], [0.0, -1.36]],
    muscle, cut / 2, Math.PI * 2 - cut));
  ventricles.add(rv);
  // The interventricular septum: a thick ellipse between the two cavities.
  const septum = new THREE.Mesh(new THREE.CylinderGeometry(0.62, 0.62, 0.09, 40), septumMat);
  septum.rotation.z = Math.PI / 2;
  septum.scale.set(1, 1, 0.55);
  septum.position.set(-0.02, -0.62, 0.04);
  septum.rotation.y = 0.35;
  const septumGroup = new THREE.Group();
  septumGroup.add(septum);
  ventricles.add(septumGroup);

  const ra = new THREE.Group();
  ra.position.set(-0.62, 0.38, 0.02);
  ra.add(atrium(THREE, 0.42, atrialMuscle, [-0.2, 0.6, 0.8]));
  heart.add(ra);
  const la = new THREE.Group();
  la.position.set(0.42, 0.42, -0.42);
  la.add(atrium(THREE, 0.4, atrialMuscle, [0.7, 0.3, 0.7]));
  heart.add(la);

  const vessels = new THREE.Group();
  heart.add(vessels);
  vessels.add(tube(THREE, [[0.12, 0.0, 0.0], [0.04, 0.75, 0.08], [0.0, 1.35, -0.1], [0.3, 1.55, -0.45], [0.55, 1.15, -0.7], [0.58, 0.1, -0.72]],
    0.17, COLOURS.artery));
  vessels.add(tube(THREE, [[-0.2, 0.0, 0.3], [-0.05, 0.65, 0.38], [0.12, 1.02, 0.2]], 0.15, COLOURS.pulmonaryArtery));
  vessels.add(tube(THREE, [[0.12, 1.02, 0.2], [0.45, 1.12, 0.0], [0.8, 1.05, -0.2]], 0.1, COLOURS.pulmonaryArtery));
  vessels.add(tube(THREE, [[0.12, 1.02, 0.2], [-0.2, 1.1, -0.05], [-0.45, 1.0, -0.3]], 0.1, COLOURS.pulmonaryArtery));
  vessels.add(tube(THREE, [[-0.66, 1.55, -0.05], [-0.66, 1.0, 0.0], [-0.64, 0.62, 0.02]], 0.12, COLOURS.vein));
  vessels.add(tube(THREE, [[-0.6, 0.05, -0.05], [-0.62, -0.5, -0.2], [-0.6, -0.95, -0.3]], 0.13, COLOURS.vein));
  for (const [dx, dy] of [[1, 1], [1, -1], [-1, 1], [-1, -1]]) {
    vessels.add(tube(THREE, [[0.42 + 0.18 * dx, 0.42 + 0.12 * dy, -0.62], [0.42 + 0.42 * dx, 0.42 + 0.22 * dy, -0.85],
      [0.42 + 0.62 * dx, 0.42 + 0.28 * dy, -0.95]], 0.06, COLOURS.pulmonaryVein));
  }

  // Drawing costs more than anything else on the page when WebGL runs in
  // software (no GPU): a frame is only drawn when the heart or the camera moved.
  let drawn = '';
  let dirty = true;
  controls.addEventListener('change', () => { dirty = true; });

  function resize() {
    dirty = true;
    const w = Math.max(50, container.clientWidth), h = Math.max(50, container.clientHeight);
    renderer.setSize(w, h);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  }
  const ro = new ResizeObserver(resize);
  ro.observe(container);
  resize();

  let lost = false;
  const onLost = [];
  renderer.domElement.addEventListener('webglcontextlost', (ev) => {
    ev.preventDefault();
    lost = true;
    for (const f of onLost) f();
  });

  // ... and at most 30 times a second: a contraction lasts 300 ms or more,
  // so 30 Hz shows it smoothly while halving the cost of a busy heart.
  let renderedAt = -Infinity;

  // state: HeartTimeline.at() output.
  function update(state) {
    if (lost) return;
    const now = performance.now();
    if (now - renderedAt < 30) return;
    controls.update();
    const key = `${state.kind}${state.ventricles.toFixed(3)}${state.atria.toFixed(3)}${state.af ? state.ts.toFixed(2) : ''}`;
    if (key === drawn && !dirty) return;
    renderedAt = now;
    drawn = key;
    dirty = false;
    const v = state.ventricles;
    if (state.kind === 'V') {
      // Ectopic activation spreads through muscle, not the conduction
      // system: the left ventricle leads, the right follows weaker, and the
      // mass tilts instead of wringing.
      lv.scale.set(1 - 0.13 * v, 1 - 0.09 * v, 1 - 0.13 * v);
      const r = Math.max(0, v - 0.25) / 0.75;
      rv.scale.set(1 - 0.08 * r, 1 - 0.05 * r, 0.75 * (1 - 0.08 * r));
      ventricles.rotation.set(0, 0.1 * v, -0.1 * v);
    } else {
      lv.scale.set(1 - 0.12 * v, 1 - 0.08 * v, 1 - 0.12 * v);
      rv.scale.set(1 - 0.12 * v, 1 - 0.08 * v, 0.75 * (1 - 0.12 * v));
      ventricles.rotation.set(0, -0.06 * v, 0);
    }
    septumGroup.scale.set(1 - 0.1 * v, 1 - 0.08 * v, 1);
    let aR = state.atria, aL = state.atria;
    if (state.af) {
      // Each atrium quivers on its own: fibrillation is not coordinated.
      const t = state.ts;
      aL = 0.06 + 0.05 * Math.sin(2 * Math.PI * 6.1 * t + 2.1) * Math.sin(2 * Math.PI * 3.3 * t);
    }
    ra.scale.setScalar(1 - 0.16 * aR);
    la.scale.setScalar(1 - 0.16 * aL);
    renderer.render(scene, camera);
  }

  return {
    update,
    setAutoRotate(on) { controls.autoRotate = on; },
    resetView() { controls.reset(); dirty = true; },
    onContextLost(f) { onLost.push(f); },
    dispose() {
      ro.disconnect();
      controls.dispose();
      renderer.dispose();
      renderer.domElement.remove();
    },
  };
}
