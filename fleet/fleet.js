// Tether fleet dashboard: every car on the broker, live telemetry of the
// selected one, drive it, stop any. Speaks the fleet topics of
// docs/protocol.md over MQTT.js, connected to the broker that served this
// page (mosquitto's http_dir on its WebSocket listener).
(function () {
  'use strict';
  const TICK_MS = 100;        // drive heartbeat, as the car's own page
  const SYNC_MS = 5000;       // re-learn the car's clock this often
  const cars = new Map();     // id -> {status, telemetry, seen, offset, row}
  let selected = null;
  let input = [0, 0];         // throttle, steer from the stick or the keys
  let driving = false;
  const keys = new Set();
  const $ = (id) => document.getElementById(id);

  const client = mqtt.connect((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/mqtt',
    {protocolVersion: 4, clean: true, reconnectPeriod: 1000, keepalive: 15});
  client.on('connect', () => {
    $('broker').textContent = 'broker connected';
    client.subscribe(['tether/+/status', 'tether/+/telemetry', 'tether/+/reply'], {qos: 0});
  });
  client.on('close', () => { $('broker').textContent = 'broker unreachable, retrying…'; });
  client.on('message', (topic, payload) => {
    const parts = topic.split('/');
    let msg;
    try { msg = JSON.parse(payload.toString()); } catch (e) { return; }
    const car = entry(parts[1]);
    if (parts[2] === 'status') {
      car.status = msg;
    } else if (parts[2] === 'telemetry') {
      car.telemetry = msg;
      car.seen = Date.now();
    } else if (parts[2] === 'reply') {
      if (msg.type === 'pong' && msg.id === car.syncId) {
        // the car's clock: uptime at the round trip's midpoint (docs/protocol.md)
        car.offset = msg.uptime_ms - (car.syncSent + Date.now()) / 2;
      } else if (parts[1] === selected && msg.type === 'error') {
        $('reply').textContent = msg.code + ': ' + msg.message;
      } else if (parts[1] === selected && msg.type === 'role') {
        $('reply').textContent = 'role: ' + msg.role;
      }
    }
    render(parts[1]);
  });

  function entry(id) {
    if (!cars.has(id)) {
      const row = document.createElement('tr');
      row.dataset.car = id;
      row.innerHTML = '<td class="id"></td><td class="state"></td><td class="battery"></td>' +
        '<td class="signal"></td><td class="seen"></td><td><button class="stop">stop</button></td>';
      row.querySelector('.id').textContent = id;
      row.addEventListener('click', () => select(id));
      row.querySelector('button').addEventListener('click', (e) => { e.stopPropagation(); send(id, {type: 'stop'}); });
      $('cars').tBodies[0].appendChild(row);
      $('empty').hidden = true;
      cars.set(id, {status: null, telemetry: null, seen: 0, offset: null, row: row});
    }
    return cars.get(id);
  }

  function send(id, msg) {
    const token = $('token').value;
    if (token && msg.type !== 'stop' && msg.type !== 'ping') msg.token = token;
    client.publish('tether/' + id + '/cmd', JSON.stringify(msg), {qos: 0, retain: false});
  }

  function sync(id) {
    const car = cars.get(id);
    car.syncId = 'sync-' + Math.random().toString(36).slice(2);
    car.syncSent = Date.now();
    send(id, {type: 'ping', id: car.syncId});
  }

  function render(id) {
    const car = cars.get(id);
    const row = car.row;
    const online = car.status && car.status.online;
    row.querySelector('.state').textContent = online ? 'online' : 'offline';
    row.querySelector('.state').className = 'state ' + (online ? 'online' : 'offline');
    const t = car.telemetry;
    row.querySelector('.battery').textContent = t && t.battery_v != null ? t.battery_v.toFixed(2) + ' V' : '–';
    row.querySelector('.signal').textContent = t && t.rssi != null ? t.rssi + ' dBm' : '–';
    if (id === selected && t) {
      const fields = {
        motor: t.motor.left.toFixed(2) + ' / ' + t.motor.right.toFixed(2),
        applied: t.applied.left.toFixed(2) + ' / ' + t.applied.right.toFixed(2),
        distance: t.distance_cm == null ? '–' : t.distance_cm + ' cm',
        driver: t.driver == null ? 'nobody' : (t.driver === 0 ? 'the fleet link' : 'client ' + t.driver),
        stopped: t.stopped_by == null ? 'no' : 'by ' + (t.stopped_by === 0 ? 'the fleet link' : 'client ' + t.stopped_by),
        'speed limit': t.speed_limit, light: t.light, horn: t.horn,
        pose: t.pose ? t.pose.x.toFixed(2) + ', ' + t.pose.y.toFixed(2) + ' m' : '–',
        heap: t.heap_free + ' B free', seq: t.seq,
      };
      const dl = $('telemetry');
      dl.innerHTML = '';
      for (const [k, v] of Object.entries(fields)) {
        const dt = document.createElement('dt'); dt.textContent = k;
        const dd = document.createElement('dd'); dd.textContent = String(v); dd.dataset.field = k;
        dl.append(dt, dd);
      }
    }
  }

  function select(id) {
    if (driving) stopDriving();
    selected = id;
    for (const [cid, car] of cars) car.row.classList.toggle('selected', cid === id);
    $('detail').hidden = false;
    $('selected').textContent = id;
    $('reply').textContent = '';
    sync(id);
    render(id);
  }

  // A stop latches on the car (docs/protocol.md) until `resume`; letting go of the
  // stick or keys is not an emergency: latch false stops without latching.
  function stopDriving(latch) {
    driving = false;
    if (selected) send(selected, latch === false ? {type: 'stop', latch: false} : {type: 'stop'});
  }

  // The stick: drag inside the pad; letting go stops.
  const pad = $('pad'), knob = $('knob');
  function fromPointer(e) {
    const r = pad.getBoundingClientRect();
    let x = (e.clientX - r.left - r.width / 2) / (r.width / 2);
    let y = (e.clientY - r.top - r.height / 2) / (r.height / 2);
    const n = Math.hypot(x, y);
    if (n > 1) { x /= n; y /= n; }
    knob.style.transform = 'translate(' + x * 80 + 'px,' + y * 80 + 'px)';
    input = [-y, x];
  }
  pad.addEventListener('pointerdown', (e) => { pad.setPointerCapture(e.pointerId); pad.dragging = true; fromPointer(e); });
  pad.addEventListener('pointermove', (e) => { if (pad.dragging) fromPointer(e); });
  const release = () => { pad.dragging = false; input = [0, 0]; knob.style.transform = ''; };
  pad.addEventListener('pointerup', release);
  pad.addEventListener('pointercancel', release);

  // Keys, as on the car's page: WASD / arrows drive, Space stops.
  const DRIVE_KEYS = new Set(['KeyW', 'KeyA', 'KeyS', 'KeyD', 'ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight']);
  window.addEventListener('keydown', (e) => {
    if (e.target === $('token')) return;
    if (e.code === 'Space') { e.preventDefault(); keys.clear(); stopDriving(); return; }
    if (DRIVE_KEYS.has(e.code)) { e.preventDefault(); keys.add(e.code); }
  });
  window.addEventListener('keyup', (e) => keys.delete(e.code));
  window.addEventListener('blur', () => keys.clear());
  const k = (a, b) => (keys.has(a) || keys.has(b)) ? 1 : 0;

  $('stop-selected').addEventListener('click', () => { keys.clear(); release(); stopDriving(); });
  $('resume').addEventListener('click', () => { if (selected) send(selected, {type: 'resume'}); });

  // One steady tick: the heartbeat while an input is held, one stop when it ends.
  setInterval(() => {
    let [throttle, steer] = input;
    if (keys.size) {
      throttle = 0.6 * (k('KeyW', 'ArrowUp') - k('KeyS', 'ArrowDown'));
      steer = 0.5 * (k('KeyD', 'ArrowRight') - k('KeyA', 'ArrowLeft'));
    }
    const held = pad.dragging || keys.size > 0;
    const car = selected && cars.get(selected);
    if (held && car && car.offset != null) {
      driving = true;
      send(selected, {type: 'drive', throttle: throttle, steer: steer, at: Math.round(Date.now() + car.offset)});
    } else if (!held && driving) {
      stopDriving(false);
    }
    const now = Date.now();
    for (const [id, c] of cars) {
      c.row.querySelector('.seen').textContent = c.seen ? Math.round((now - c.seen) / 1000) + ' s ago' : '–';
    }
  }, TICK_MS);
  setInterval(() => { if (selected) sync(selected); }, SYNC_MS);
})();
