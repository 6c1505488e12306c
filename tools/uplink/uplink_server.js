#!/usr/bin/env node
// A reference uplink server on Node.js and the `ws` package (docs/protocol.md,
// "Uplink"): the same server as tools/uplink/uplink_server.py, the same options, keys,
// stdin commands and output lines (see that file's docstring). Install `ws` once:
//   (cd tools/uplink && npm ci)
//   node tools/uplink/uplink_server.js [--host 127.0.0.1] [--port 8765] [--path /car]
//                               [--bearer TOKEN] [--subprotocol NAME]
'use strict';
const http = require('http');
const path = require('path');
const readline = require('readline');
const { WebSocketServer } = require(path.join(__dirname, 'node_modules', 'ws'));

const HEARTBEAT_MS = 100;
const args = { host: '127.0.0.1', port: 8765, path: '/car', bearer: null, subprotocol: null };
for (let i = 2; i < process.argv.length; i += 2) {
  const name = process.argv[i].replace(/^--/, '');
  if (!(name in args) || i + 1 >= process.argv.length) {
    console.error('usage: node tools/uplink/uplink_server.js [--host H] [--port N] [--path /car] ' +
                  '[--bearer TOKEN] [--subprotocol NAME]');
    process.exit(2);
  }
  args[name] = name === 'port' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

const say = (line) => process.stdout.write(line + '\n');
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000;  // ms, monotonic

const cars = new Map();  // number -> car
let count = 0;
let selected = null;
let throttle = 0;
let steer = 0;
let token = null;
let light = false;

// --- the handshake: path, bearer token, subprotocol --------------------------

function refuse(socket, status, text, why) {
  say(`refused ${socket.remoteAddress}:${socket.remotePort}: ${status} (${why})`);
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\n` +
             `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
}

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: 4096,
  // The one we speak if the car offered it, else none: a car that asked for
  // another one then refuses the handshake itself (and says why).
  handleProtocols: (offered) => (args.subprotocol && offered.has(args.subprotocol) ? args.subprotocol : false),
});
const server = http.createServer((req, res) => { res.writeHead(426); res.end('WebSocket only\n'); });
server.on('upgrade', (req, socket, head) => {
  const where = req.url.split('?')[0];
  if (where !== args.path) {
    return refuse(socket, 404, 'no uplink at this path\n', `path ${req.url}, this server serves ${args.path}`);
  }
  if (args.bearer && req.headers.authorization !== 'Bearer ' + args.bearer) {
    return refuse(socket, 401, 'Authorization: Bearer <token> needed\n', 'no or wrong Authorization: Bearer ...');
  }
  wss.handleUpgrade(req, socket, head, (ws) => connected(ws, req));
});

// --- a connected car ---------------------------------------------------------

function send(car, message) {
  if (car.ws.readyState === car.ws.OPEN) {
    car.ws.send(typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message));
  }
}

function ping(car) {
  const id = 'sync-' + car.pings++;
  car.pingSent.set(id, now());
  send(car, { type: 'ping', id });
}

function connected(ws, req) {
  const car = { number: ++count, ws, offset: null, pingSent: new Map(), pings: 0 };
  cars.set(car.number, car);
  selected = car.number;
  say(`car ${car.number} connected from ${req.socket.remoteAddress}:${req.socket.remotePort} ` +
      `(subprotocol ${ws.protocol || 'None'})`);
  ws.on('message', (data, isBinary) => {
    if (isBinary) return say(`car ${car.number} binary ${data.toString('hex')}`);
    const text = data.toString();
    let msg;
    try { msg = JSON.parse(text); } catch (e) { return say(`car ${car.number} text ${text}`); }
    if (msg.type === 'hello') {
      say(`car ${car.number} hello ${text}`);
      ping(car);  // learn its clock for `at`
    } else if (msg.type === 'telemetry') {
      say(`car ${car.number} telemetry ${text}`);
    } else {
      if (msg.type === 'pong' && car.pingSent.has(msg.id) && 'uptime_ms' in msg) {
        car.offset = msg.uptime_ms - (car.pingSent.get(msg.id) + now()) / 2;
        car.pingSent.delete(msg.id);
      }
      say(`car ${car.number} reply ${text}`);
    }
  });
  ws.on('error', (e) => say(`car ${car.number} error ${e.message}`));
  ws.on('close', (code, reason) => {
    cars.delete(car.number);
    say(`car ${car.number} gone (${code} ${reason})`);
  });
}

// --- commands ----------------------------------------------------------------

function drive(car) {
  const msg = { type: 'drive', throttle, steer, at: Math.floor(now() + car.offset) };
  if (token) msg.token = token;
  send(car, msg);
}

setInterval(() => {
  const car = cars.get(selected);
  if (car && car.offset !== null && (throttle || steer)) drive(car);
}, HEARTBEAT_MS);

function command(line) {
  const words = line.trim().split(/\s+/);
  const verb = words[0];
  const rest = line.trim().slice(verb.length).trim();
  const car = cars.get(selected);
  try {
    if (!verb) return;
    if (verb === 'quit') process.exit(0);
    if (verb === 'car') { selected = Number(rest); say(`talking to car ${rest}`); return; }
    if (verb === 'token') { token = rest || null; return; }
    if (verb === 'drive') {
      throttle = Number(words[1]); steer = Number(words[2]);
      if (car && car.offset !== null) drive(car);  // at once, not on the next beat
      return;
    }
    if (!car) return say('no car connected');
    if (verb === 'stop') { throttle = steer = 0; send(car, { type: 'stop' }); }
    else if (verb === 'send') send(car, rest);
    else if (verb === 'binary') send(car, Buffer.from(rest, 'hex'));
    else if (verb === 'ping') ping(car);
    else if (verb === 'light') {
      light = !light;
      const msg = { type: 'actuator', name: 'light', value: light };
      if (token) msg.token = token;
      send(car, msg);
    } else say(`unknown command '${verb}'`);
  } catch (e) {
    say(`command '${line}' failed: ${e.message}`);
  }
}

if (process.stdin.isTTY) {
  readline.emitKeypressEvents(process.stdin);
  process.stdin.setRawMode(true);
  say('keys: w/s throttle, a/d steer, space stop, l light, p ping, 1-9 car, q quit');
  const steps = { w: [0.25, 0], s: [-0.25, 0], a: [0, -0.25], d: [0, 0.25] };
  const clamp = (v) => Math.max(-1, Math.min(1, v));
  process.stdin.on('keypress', (str, key) => {
    if (str === 'q' || (key && key.ctrl && key.name === 'c')) process.exit(0);
    if (steps[str]) {
      const t = clamp(throttle + steps[str][0]);
      const s = clamp(steer + steps[str][1]);
      command(`drive ${t} ${s}`);
      say(`throttle ${t.toFixed(2)} steer ${s.toFixed(2)}`);
    } else if (str === ' ') command('stop');
    else if (str === 'l') command('light');
    else if (str === 'p') command('ping');
    else if (str && /^[1-9]$/.test(str)) command('car ' + str);
  });
} else {
  readline.createInterface({ input: process.stdin }).on('line', command).on('close', () => process.exit(0));
}

server.listen(args.port, args.host, () => {
  say(`listening on ws://${args.host}:${server.address().port}${args.path}`);
});
