// Tether control page. Plain JS, no libraries: it is served by the car itself,
// often to a phone on the car's own access point with no internet.
// Protocol: docs/protocol.md (JSON text messages on WebSocket path /ws).
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const now = () => performance.now();
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const round2 = (v) => Math.round(v * 100) / 100;

  const TICK_MS = 100;          // drive heartbeat; the car's deadman is ~500 ms
  const PING_MS = 1000;
  const SILENCE_MS = 3500;      // nothing heard for this long: the link is dead
  const LOW_BATTERY_V = 6.8;
  const CHART_MS = 10000;

  const ui = {
    app: $('app'), banner: $('banner'), device: $('device'), version: $('version'), conn: $('conn'), role: $('role'),
    rtt: $('rtt'), dist: $('dist'), spd: $('spd'), odo: $('odo'), batt: $('batt'), battBox: $('batt-box'), battLabel: $('batt-label'), rssi: $('rssi'),
    heap: $('heap'), heapUnit: $('heap-unit'), chart: $('chart'), map: $('map'), speed: $('speed'), speedVal: $('speed-val'),
    stick: $('stick'), base: $('base'), knob: $('knob'), hint: $('hint'), light: $('light'), horn: $('horn'),
    estop: $('estop'), cfg: $('cfg'), stopBy: $('stop-by'), toast: $('toast'), say: $('say'),
  };
  // Write only what changed: a screen reader hears a live region each time it is rewritten.
  const put = (el, text) => { if (el.textContent !== text) el.textContent = text; };

  // ---------------------------------------------------------------- connection
  // An access token in the page's own URL (?token=...) goes along to the car.
  const token = new URLSearchParams(location.search).get('token');
  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' +
    (token ? '?token=' + encodeURIComponent(token) : '');
  let ws = null;
  let online = false;           // open and greeted by the car
  let epoch = 0;                // bumped on every disconnect: gestures from before can't drive
  let attempt = 0;
  let retryTimer = 0;
  let retryAt = 0;
  let lastHeard = 0;
  let connectStarted = 0;
  let lastPing = 0;
  let pingSeq = 0;
  const pings = new Map();      // ping id -> time sent
  let car = { id: null, role: 'viewer', driver: undefined, stoppedBy: undefined, limits: {}, room: null, light: false };

  function connect() {
    clearTimeout(retryTimer);
    retryAt = 0;
    setConn('connecting');
    connectStarted = now();
    let sock;
    try { sock = new WebSocket(wsUrl); } catch (e) { scheduleRetry(); return; }
    ws = sock;
    sock.onopen = () => { lastHeard = now(); ping(); };
    sock.onmessage = (e) => { if (ws === sock) { lastHeard = now(); onMessage(e.data); } };
    sock.onclose = sock.onerror = () => { if (ws === sock) dropped(); };
  }

  function dropped() {
    const sock = ws;
    ws = null;
    if (sock) {
      sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
      try { sock.close(); } catch (e) { /* already closing */ }
    }
    online = false;
    epoch++;
    releaseAll();               // nothing held survives a disconnect: re-touch to drive
    pings.clear();
    car.id = null; car.driver = car.stoppedBy = undefined; car.readOnly = false;
    hist.push({ t: now() });    // a gap: chart lines and the trail break here
    renderRole();
    scheduleRetry();
  }

  // Exponential backoff with ±30 % jitter so several phones don't reconnect in lockstep.
  function scheduleRetry() {
    const base = Math.min(5000, 250 * 2 ** attempt);
    attempt++;
    const delay = base * (0.7 + Math.random() * 0.6);
    retryAt = now() + delay;
    retryTimer = setTimeout(connect, delay);
    setConn('offline');
  }

  function reconnectNow() {
    if (!ws) { attempt = 0; connect(); }
  }

  function setConn(state) {
    document.body.dataset.conn = state;
    put(ui.conn, state === 'online' ? 'Online' : state === 'offline' ? 'Offline' : 'Connecting…');
    ui.banner.hidden = state === 'online';
    renderBanner();
    renderStick();
  }

  function renderBanner() {
    const u = car.update;
    if (u) {                   // docs/updates.md: the car stops and refuses driving meanwhile
      ui.banner.hidden = u.state === 'failed' && online;
      ui.banner.textContent = u.state === 'receiving'
        ? 'Updating to ' + u.version + ': ' + Math.floor(100 * u.done / Math.max(u.total, 1)) + '%'
        : u.state === 'installing' ? 'Installing ' + u.version + ': the car restarts…' : '';
      if (u.state === 'failed') { car.update = null; toast('Update to ' + u.version + ' failed'); }
      else return;
    }
    if (ui.banner.hidden) return;
    const wait = retryAt ? Math.max(0, (retryAt - now()) / 1000) : 0;
    ui.banner.textContent = retryAt
      ? 'Disconnected from the car — retrying in ' + wait.toFixed(1) + ' s (tap to retry now)'
      : 'Disconnected from the car — connecting…';
  }

  // Drive commands are never queued: only sent on an open socket whose send
  // buffer is empty, so nothing stale reaches the car after a stall.
  function send(msg, always) {
    if (!ws || ws.readyState !== 1) return false;
    if (!always && ws.bufferedAmount > 0) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  function ping() {
    lastPing = now();
    const id = ++pingSeq;
    pings.set(id, lastPing);
    if (pings.size > 5) pings.delete(pings.keys().next().value);
    send({ type: 'ping', id }, true);
  }

  function onMessage(data) {
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    switch (m.type) {
      case 'hello':
        attempt = 0;
        online = true;
        car.id = m.id;
        document.body.dataset.client = m.id;
        car.role = m.role;
        car.limits = m.limits || {};
        car.room = m.room || null;
        ui.device.textContent = (m.device || 'Tether') + (m.simulated ? ' (sim)' : '');
        ui.version.textContent = m.firmware;
        car.update = null;          // a new hello: whatever update there was is over
        ui.banner.hidden = true;
        ui.map.hidden = !car.room;
        showConfigErrors(m.config_errors || []);
        setConn('online');
        renderRole();
        break;
      case 'telemetry': onTelemetry(m); break;
      case 'update': car.update = m; renderBanner(); break;
      case 'role': car.role = m.role; renderRole(); break;
      case 'pong': {
        const sent = pings.get(m.id);
        if (sent !== undefined) {
          pings.delete(m.id);
          ui.rtt.textContent = Math.round(now() - sent) + ' ms';
        }
        break;
      }
      case 'error':
        refused = true;             // held inputs stay refused: they never take over later
        if (m.code === 'stopped') {
          holdStop();               // the car is latched: telemetry says by whom
        } else if (m.code === 'not_driver') {
          toast('Another device is driving — you are a viewer');
        } else if (m.code === 'forbidden') {
          car.readOnly = true;
          renderRole();
          toast('View only: open this page with ?token=… to drive');
        } else {
          toast(m.message || m.code);
        }
        break;
    }
  }

  // Who drives: telemetry.driver is the car's truth; `role` messages arrive first.
  function otherDrives() { return car.driver != null && car.driver !== car.id; }

  function renderRole() {
    const driver = online && (car.driver === undefined ? car.role === 'driver' : car.driver === car.id);
    ui.role.className = 'pill' + (driver ? ' driver' : '');
    renderStick();
    put(ui.role, !online ? '—' : driver ? 'Driver' : car.readOnly ? 'Viewer · no token'
      : car.driver == null ? 'Viewer · free' : 'Viewer');
  }

  // ----------------------------------------------------------------- readouts
  const hist = [];              // recent samples for the chart and the map trail
  // Travelled (m) since the page opened, and speed (m/s) over the last SPEED_MS of it: a
  // pose is the physics' last step, up to a control tick older than the frame's uptime_ms,
  // so speed from two frames alone is off by up to a tick over their gap (20 ms in 50 ms at 20 Hz).
  const SPEED_MS = 500;
  const odo = { last: null, m: 0, v: 0, win: [] };

  function onTelemetry(m) {
    car.driver = m.driver;
    renderRole();
    const was = latched();
    car.stoppedBy = m.stopped_by;
    if (m.stopped_by != null) stopHeld = false;   // the car holds it now; whoever re-arms releases every page
    if (latched() !== was) { if (!was) holdStop(); else renderStop(); }
    const d = m.distance_cm;
    ui.dist.textContent = d == null ? '—' : Math.round(d);
    ui.dist.parentNode.classList.toggle('alert', d != null && d <= (car.limits.stop_distance_cm || 0));
    // Speed and distance travelled from successive poses (the simulated car's; a real car
    // without encoders has none): the car's uptime clock, so network jitter does not count.
    const p0 = m.pose;
    if (p0) {
      if (odo.last) odo.m += Math.hypot(p0.x - odo.last.x, p0.y - odo.last.y);
      odo.last = p0;
      const w = odo.win, u = m.uptime_ms;
      if (w.length && u < w[w.length - 1].u) w.length = 0;  // the car restarted
      w.push({ u, m: odo.m });
      while (w.length > 2 && w[1].u <= u - SPEED_MS) w.shift();
      const dt = (u - w[0].u) / 1000;
      odo.v = dt > 0 ? (odo.m - w[0].m) / dt : 0;
    }
    ui.spd.textContent = p0 ? odo.v.toFixed(2) : '—';
    ui.odo.textContent = p0 ? (odo.m < 100 ? odo.m.toFixed(1) : String(Math.round(odo.m))) : '—';
    const v = m.battery_v;
    const low = v != null && v < LOW_BATTERY_V;
    ui.batt.textContent = v == null ? '—' : v.toFixed(2);
    ui.battBox.classList.toggle('warn', low);
    ui.battLabel.textContent = low ? 'Battery LOW' : 'Battery';
    ui.rssi.textContent = m.rssi == null ? '—' : m.rssi;
    const kb = m.heap_free / 1024;  // tens of KB on a board, megabytes on a computer
    ui.heap.textContent = m.heap_free == null ? '—' : kb < 100 ? kb.toFixed(1) : kb < 1000 ? Math.round(kb) : (kb / 1024).toFixed(1);
    ui.heapUnit.textContent = kb < 1000 ? 'KB' : 'MB';
    car.light = !!m.light;
    ui.light.setAttribute('aria-pressed', String(car.light));
    ui.light.textContent = car.light ? 'Light on' : 'Light';
    if (m.speed_limit != null && now() > speedTouched + 1500) showSpeed(Math.round(m.speed_limit * 100));

    const t = now();
    const a = m.applied || {};
    const p = m.pose;
    hist.push({ t, d, l: a.left, r: a.right, x: p && p.x, y: p && p.y, h: p && p.heading });
    while (hist.length && hist[0].t < t - CHART_MS) hist.shift();
    requestDraw();
  }

  // ----------------------------------------------------------- chart and map
  let drawPending = false;
  function requestDraw() {
    if (!drawPending && !document.hidden) { drawPending = true; requestAnimationFrame(draw); }
  }
  function draw() {
    drawPending = false;
    drawChart();
    if (car.room && !ui.map.hidden) drawMap();
  }

  // Size the canvas backing store to its CSS box (sharp on high-DPI phones).
  function fit(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(c.clientWidth * dpr), h = Math.round(c.clientHeight * dpr);
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, c.clientWidth, c.clientHeight);
    return g;
  }

  // Every line and mark has at least 3:1 contrast on the panels' #eef0f3 (tests check it).
  const COLORS = { d: '#0047ab', l: '#d35400', r: '#8e24aa' };
  const GRID = '#6b7280', INK = '#333';

  // Two panes on one time axis: both wheel speeds (-1..+1) above, the distance ahead
  // (0..dmax cm) below, each with its own labelled scale.
  function drawChart() {
    const c = ui.chart, g = fit(c), W = c.clientWidth, H = c.clientHeight;
    if (!W || !H) return;
    const t1 = now(), left = 30, right = 6, top = 20, gap = 8, bottom = 14;
    const ph = Math.max(10, (H - top - gap - bottom) / 2), d0 = top + ph + gap;
    const x = (t) => left + ((t - t1 + CHART_MS) / CHART_MS) * (W - left - right);
    let dmax = 100;
    for (const s of hist) if (s.d != null && s.d > dmax) dmax = s.d;
    dmax = Math.ceil(dmax / 50) * 50;
    const yWheel = (v) => top + ph * (1 - clamp(v, -1, 1)) / 2;
    const yDist = (d) => d0 + ph * (1 - clamp(d / dmax, 0, 1));
    g.strokeStyle = GRID; g.lineWidth = 1; g.beginPath();
    g.moveTo(left, yWheel(0)); g.lineTo(W - right, yWheel(0));          // wheel zero
    g.moveTo(left, d0 + ph); g.lineTo(W - right, d0 + ph);              // distance zero
    g.moveTo(left, top); g.lineTo(left, top + ph); g.moveTo(left, d0); g.lineTo(left, d0 + ph);
    g.stroke();
    g.fillStyle = INK; g.font = '600 11px system-ui, sans-serif'; g.textAlign = 'right'; g.textBaseline = 'middle';
    g.fillText('+1', left - 4, yWheel(1) + 5); g.fillText('−1', left - 4, yWheel(-1) - 5);
    if (ph >= 40) g.fillText('0', left - 4, yWheel(0));   // room for a middle label
    g.fillText(String(dmax), left - 4, d0 + 5); g.fillText('0', left - 4, d0 + ph - 5);
    g.textBaseline = 'bottom';
    g.fillText('now', W - right, H); g.textAlign = 'left'; g.fillText('−10 s', left, H);
    const line = (key, y, width, dash) => {
      g.strokeStyle = COLORS[key]; g.lineWidth = width; g.setLineDash(dash); g.beginPath();
      let pen = false;
      for (const s of hist) {
        const v = s[key];
        if (v == null) { pen = false; continue; }
        if (pen) g.lineTo(x(s.t), y(v)); else g.moveTo(x(s.t), y(v));
        pen = true;
      }
      g.stroke();
      g.setLineDash([]);
    };
    line('d', yDist, 2.5, []);
    line('l', yWheel, 5, []);            // L wide, R thin and dashed on top: equal wheels show both
    line('r', yWheel, 2, [6, 4]);
    g.font = '700 12px system-ui, sans-serif'; g.textBaseline = 'top';
    let lx = left + 4;
    const legend = (items, y) => {
      for (const [key, label] of items) {
        g.fillStyle = COLORS[key]; g.fillRect(lx, y + 1, 10, 10);
        g.fillStyle = '#000'; g.fillText(label, lx + 13, y);
        lx += 20 + g.measureText(label).width;
      }
    };
    legend([['l', 'left wheel'], ['r', 'right wheel']], 4);
    lx = left + 4;
    legend([['d', 'distance ahead, cm']], d0 + 2);
  }

  // Top-down room view: origin bottom-left, y up, heading in radians from +x. The panel
  // takes the room's shape, so the room fills it: beside the chart (at most 45 % of the
  // width) or under it (at most 55 % of the height), whichever gives the bigger map.
  function shapeMap(c, room) {
    const box = c.parentNode, vw = box.clientWidth, vh = box.clientHeight, ar = room.width / room.height;
    const wr = Math.min(vw * 0.45, vh * ar), hc = Math.min(vh * 0.55, vw / ar);
    const col = hc * hc * ar > wr * wr / ar;
    box.classList.toggle('col', col);
    const style = c.style, basis = Math.floor(col ? hc : wr) + 'px';
    const width = col ? Math.floor(hc * ar) + 'px' : '', height = col ? '' : Math.floor(wr / ar) + 'px';
    if (style.flexBasis !== basis) style.flexBasis = basis;
    if (style.width !== width) style.width = width;
    if (style.height !== height) style.height = height;
  }
  function drawMap() {
    const c = ui.map, room = car.room;
    shapeMap(c, room);
    const g = fit(c), W = c.clientWidth, H = c.clientHeight;
    if (!W || !H) return;
    const pad = 3;
    const k = Math.min((W - 2 * pad) / room.width, (H - 2 * pad) / room.height);
    const ox = (W - room.width * k) / 2, oy = (H + room.height * k) / 2;
    const px = (x) => ox + x * k, py = (y) => oy - y * k;
    g.strokeStyle = '#000'; g.lineWidth = 3;
    g.strokeRect(px(0), py(room.height), room.width * k, room.height * k);
    g.strokeStyle = GRID; g.lineWidth = 2; g.beginPath();
    let pen = false, last = null;
    for (const s of hist) {
      if (s.x == null) { pen = false; continue; }
      if (pen) g.lineTo(px(s.x), py(s.y)); else g.moveTo(px(s.x), py(s.y));
      pen = true; last = s;
    }
    g.stroke();
    if (!last) return;
    const cx = px(last.x), cy = py(last.y), h = last.h || 0, cos = Math.cos(h), sin = -Math.sin(h);
    if (last.d != null) {       // the distance sensor's ray
      g.strokeStyle = '#c00000'; g.lineWidth = 2; g.beginPath(); g.moveTo(cx, cy);
      g.lineTo(cx + cos * last.d / 100 * k, cy + sin * last.d / 100 * k); g.stroke();
    }
    const r = Math.max(12, 0.16 * k);  // the car: at least 12 px, whatever the room's scale
    g.fillStyle = COLORS.d; g.beginPath();
    g.moveTo(cx + cos * r, cy + sin * r);
    g.lineTo(cx - cos * r * 0.7 - sin * r * 0.7, cy - sin * r * 0.7 + cos * r * 0.7);
    g.lineTo(cx - cos * r * 0.7 + sin * r * 0.7, cy - sin * r * 0.7 - cos * r * 0.7);
    g.closePath(); g.fill();
  }

  // -------------------------------------------------------------------- input
  // Each source yields [throttle, steer] in [-1, 1] or null when idle.
  const stick = { id: null, epoch: -1, t: 0, s: 0 };
  const keys = new Set();
  const pad = { index: null, armed: false, value: null, stopWas: false };
  // Emergency stop: held here from the moment STOP is pressed until the car reports it
  // (telemetry stopped_by), then on the car until somebody re-arms it; nothing drives meanwhile.
  let stopHeld = false;
  const latched = () => stopHeld || car.stoppedBy != null;
  let refused = false;          // the car said not_driver to what is held now
  let driving = false;          // the last thing we told the car was `drive`
  let lastDrive = 0;
  let lastDemand = null;

  function stickDemand() {
    return stick.id !== null && stick.epoch === epoch ? [stick.t, stick.s] : null;
  }
  function keyDemand() {
    if (!keys.size) return null;
    const k = (a, b) => (keys.has(a) || keys.has(b) ? 1 : 0);
    return [k('KeyW', 'ArrowUp') - k('KeyS', 'ArrowDown'), k('KeyD', 'ArrowRight') - k('KeyA', 'ArrowLeft')];
  }
  function demand() {
    const held = stickDemand() || keyDemand() || pad.value;
    if (!held) refused = false;     // everything let go: the next input may try again
    return online && !latched() && !refused ? held : null;
  }

  // Sends `drive` while any input is held (the heartbeat) and one `stop` when it ends.
  // Called every tick and on every input change, at most every 40 ms for changes.
  function pump(fromTick) {
    const d = demand();
    const t = now();
    if (d) {
      const changed = !lastDemand || d[0] !== lastDemand[0] || d[1] !== lastDemand[1];
      if (fromTick ? t - lastDrive >= TICK_MS - 15 : changed && t - lastDrive >= 40) {
        if (send({ type: 'drive', throttle: round2(d[0]), steer: round2(d[1]) })) {
          lastDrive = t; lastDemand = d; driving = true;
        }
      }
    } else if (driving) {
      stopCar();
    }
  }

  // Letting go: the car stops at once but stays ours to drive (latch: false).
  function stopCar() {
    driving = false; lastDemand = null;
    // A viewer letting go must not stop somebody else's driving; anyone may still press STOP.
    if (!otherDrives()) send({ type: 'stop', latch: false }, true);
  }

  function releaseAll() {
    releaseStick();
    keys.clear();
    pad.armed = false; pad.value = null;
    setHorn(false);
    pump(false);
  }

  // Stick: the first finger down owns it (pointer capture); other fingers are ignored.
  function releaseStick() {
    if (stick.id !== null && ui.stick.hasPointerCapture && ui.stick.hasPointerCapture(stick.id)) {
      try { ui.stick.releasePointerCapture(stick.id); } catch (e) { /* gone */ }
    }
    stick.id = null; stick.t = stick.s = 0;
    renderStick();
  }

  function moveStick(e) {
    // Zero is the drawn ring's centre, not the touch area's: the ring sits at the bottom of a
    // taller box in portrait, so measuring from the box drove the car backwards on a plain touch.
    const r = ui.base.getBoundingClientRect();
    const radius = r.width / 2 * 0.82;                  // full scale a little inside the ring's edge
    let dx = (e.clientX - r.left - r.width / 2) / radius;
    let dy = (e.clientY - r.top - r.height / 2) / radius;
    const m = Math.hypot(dx, dy);
    if (m > 1) { dx /= m; dy /= m; }
    const dead = m < 0.08;
    stick.t = dead ? 0 : round2(-dy);
    stick.s = dead ? 0 : round2(dx);
    ui.knob.style.transform = 'translate(' + dx * radius + 'px,' + dy * radius + 'px)';
    pump(false);
  }

  function renderStick() {
    const held = latched(), active = stick.id !== null && !held;
    ui.stick.classList.toggle('active', active);
    ui.stick.classList.toggle('locked', held);
    // A viewer's stick is greyed and says so: its touches drive nothing while somebody drives.
    const idle = online && !held && otherDrives();
    ui.stick.classList.toggle('idle', idle);
    ui.stick.setAttribute('aria-disabled', String(idle || held || !online));
    if (!active) ui.knob.style.transform = '';
    put(ui.hint, held ? (car.stoppedBy != null && otherDrives() ? 'Driver unlocks' : 'Tap to unlock')
      : !online ? 'OFFLINE' : otherDrives() ? 'VIEWING' : 'DRIVE');
  }

  // Who holds the stop, as every page shows it.
  const stopper = () => car.stoppedBy == null || car.stoppedBy === car.id ? 'you' : 'client ' + car.stoppedBy;
  let said = '';
  function renderStop() {
    const held = latched(), by = held ? 'by ' + stopper() : '';
    ui.estop.classList.toggle('latched', held);
    ui.estop.setAttribute('aria-pressed', String(held));
    put(ui.estop.firstChild, held ? 'STOPPED' : 'STOP');
    put(ui.stopBy, by);
    const news = held ? 'Car stopped ' + by : said ? 'Stop released' : '';
    if (news !== said) { said = news; put(ui.say, news); }
    renderStick();
  }

  ui.stick.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    if (stick.id !== null) return;                      // a second finger: ignore it
    if (latched()) { unlock(); return; }
    if (!online) { toast('Not connected to the car'); return; }
    ui.stick.setPointerCapture(e.pointerId);
    stick.id = e.pointerId;
    stick.epoch = epoch;
    renderStick();
    moveStick(e);
  });
  ui.stick.addEventListener('pointermove', (e) => { if (e.pointerId === stick.id) moveStick(e); });
  const stickUp = (e) => { if (e.pointerId === stick.id) { releaseStick(); pump(false); } };
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) ui.stick.addEventListener(type, stickUp);

  // Emergency stop: acts on pointerdown (no click delay) and latches on the car: nothing
  // drives, from any page, until a tap on the stick re-arms it (the driver's, or anyone's
  // when nobody drives). The tap only re-arms: driving takes a fresh touch.
  function holdStop() {
    releaseStick(); keys.clear(); pad.armed = false; pad.value = null;
    driving = false; lastDemand = null;
    renderStop();
  }
  function emergencyStop() {
    stopHeld = true;
    holdStop();
    send({ type: 'stop' }, true);
  }
  function unlock() {
    if (car.stoppedBy != null && otherDrives()) { toast('Stopped by ' + stopper() + ' — the driver unlocks it'); return; }
    stopHeld = false;
    send({ type: 'resume' }, true);
    renderStop();
  }
  ui.estop.addEventListener('pointerdown', (e) => { e.preventDefault(); emergencyStop(); });
  ui.estop.addEventListener('click', (e) => { if (e.detail === 0) emergencyStop(); });  // keyboard / screen reader

  // Keyboard: WASD or arrows drive while held; Escape, or Space when no other button has
  // focus, is the emergency stop; H or Space/Enter on Horn sounds the horn while held.
  // Key repeats are ignored so a key held across a reconnect must be pressed again.
  const DRIVE_KEYS = new Set(['KeyW', 'KeyA', 'KeyS', 'KeyD', 'ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight']);
  const PRESS_KEYS = new Set(['Space', 'Enter']);
  window.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const focused = e.target.closest ? e.target.closest('button, input') : null;
    if (focused === ui.horn && PRESS_KEYS.has(e.code)) { e.preventDefault(); if (!e.repeat) setHorn(true); return; }
    // Space on STOP stops on the way down, like a touch; preventDefault: no second stop from its click.
    if (e.code === 'Escape' || (e.code === 'Space' && (!focused || focused === ui.estop))) {
      e.preventDefault(); if (!e.repeat) emergencyStop(); return;
    }
    if (e.code === 'KeyH' && !e.repeat) { setHorn(true); return; }
    if (e.code === 'Enter' && e.target === ui.stick && latched()) { unlock(); return; }
    if (!DRIVE_KEYS.has(e.code)) return;
    if (e.target === ui.speed && e.code.startsWith('Arrow')) return;  // let the slider have its arrows
    e.preventDefault();
    if (e.repeat || !online || latched()) return;
    keys.add(e.code);
    pump(false);
  });
  window.addEventListener('keyup', (e) => {
    if (e.code === 'KeyH' || PRESS_KEYS.has(e.code)) setHorn(false);
    if (keys.delete(e.code)) pump(false);
  });

  // Gamepad: left stick drives, B / circle is the emergency stop. After a disconnect or a
  // stop the stick must come back to centre before it drives again.
  window.addEventListener('gamepadconnected', (e) => { pad.index = e.gamepad.index; toast('Gamepad connected'); });
  window.addEventListener('gamepaddisconnected', (e) => {
    if (e.gamepad.index === pad.index) { pad.index = null; pad.value = null; pump(false); }
  });
  function pollPad() {
    if (pad.index === null || !navigator.getGamepads) return;
    const gp = navigator.getGamepads()[pad.index];
    if (!gp) return;
    const stopNow = !!(gp.buttons[1] && gp.buttons[1].pressed);
    if (stopNow && !pad.stopWas) emergencyStop();
    pad.stopWas = stopNow;
    const shape = (v) => (Math.abs(v) < 0.15 ? 0 : round2(Math.sign(v) * (Math.abs(v) - 0.15) / 0.85));
    const t = -shape(gp.axes[1] || 0), s = shape(gp.axes[0] || 0);
    if (!t && !s) { pad.armed = online && !latched(); pad.value = null; return; }
    pad.value = pad.armed ? [t, s] : null;
  }

  // Leaving the page in any way stops the car.
  window.addEventListener('blur', releaseAll);
  window.addEventListener('pagehide', releaseAll);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) releaseAll(); else reconnectNow();
  });
  window.addEventListener('online', reconnectNow);
  ui.stick.addEventListener('contextmenu', (e) => e.preventDefault());

  // ---------------------------------------------------------------- actuators
  ui.light.addEventListener('click', () => {
    send({ type: 'actuator', name: 'light', value: !car.light }, true);
  });
  let hornOn = false;
  function setHorn(on) {
    if (on === hornOn) return;
    hornOn = on;
    ui.horn.classList.toggle('on', on);
    send({ type: 'actuator', name: 'horn', value: on }, true);
  }
  ui.horn.addEventListener('pointerdown', (e) => {
    e.preventDefault(); ui.horn.setPointerCapture(e.pointerId); setHorn(true);
  });
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture', 'blur']) ui.horn.addEventListener(type, () => setHorn(false));
  // A screen reader's activation is a click with no key or pointer: a short beep.
  ui.horn.addEventListener('click', (e) => { if (e.detail === 0 && !hornOn) { setHorn(true); setTimeout(() => setHorn(false), 300); } });
  ui.horn.addEventListener('contextmenu', (e) => e.preventDefault());

  // Speed limit: sent while sliding (at most every 100 ms) and once on release.
  let speedTouched = -Infinity, speedSent = 0;
  function showSpeed(pct) { ui.speed.value = pct; ui.speedVal.textContent = pct + '%'; }
  function sendSpeed(final) {
    speedTouched = now();
    ui.speedVal.textContent = ui.speed.value + '%';
    if (final || speedTouched - speedSent >= 100) {
      speedSent = speedTouched;
      send({ type: 'speed_limit', value: ui.speed.value / 100 }, true);
    }
  }
  ui.speed.addEventListener('input', () => sendSpeed(false));
  ui.speed.addEventListener('change', () => sendSpeed(true));

  // ---------------------------------------------------------------- misc
  let toastTimer = 0;
  function toast(text) {
    ui.toast.textContent = text;
    ui.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { ui.toast.hidden = true; }, 2500);
  }
  ui.banner.addEventListener('click', reconnectNow);
  // What the car found wrong in its config.json: shown until tapped away (once per car start).
  let cfgSeen = '';
  function showConfigErrors(list) {
    const text = list.join('\n');
    if (!list.length || text === cfgSeen) { ui.cfg.hidden = true; return; }
    ui.cfg.textContent = 'config.json problems (tap to hide):\n' + text;
    ui.cfg.classList.toggle('loud', /DEFAULT password/.test(text));
    ui.cfg.hidden = false;
    ui.cfg.onclick = () => { cfgSeen = text; ui.cfg.hidden = true; };
  }
  window.addEventListener('resize', requestDraw);

  // One steady tick: drive heartbeat, gamepad, ping, link watchdog, banner countdown.
  setInterval(() => {
    pollPad();
    pump(true);
    const t = now();
    if (ws && ws.readyState === 1) {
      if (t - lastPing >= PING_MS) ping();
      if (t - lastHeard > SILENCE_MS) dropped();
    } else if (ws && t - connectStarted > SILENCE_MS) {
      dropped();                // a connect that hangs (car out of range) is retried
    }
    renderBanner();
  }, TICK_MS);

  renderStop();
  renderRole();
  connect();
})();
