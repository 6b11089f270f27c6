// Tests of the mini-program SDK against a fake `wx` (run: node --test sdk/miniprogram/test/).
'use strict';

const { test, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { createWx, IOS, ANDROID } = require('../testing/fake_wx.js');

const SDK = path.join(__dirname, '..', 'weanalysis.js');
const SERVER = 'https://stats.example.com';
const APPID = 'wxsdktest';
const NOW = Date.UTC(2024, 5, 1, 2, 0, 0);

// A fresh SDK instance, as a new launch of the mini-program would get (same storage if given).
function launch(wx, options = {}) {
  global.wx = wx;
  delete require.cache[require.resolve(SDK)];
  const wa = require(SDK);
  wa.init(Object.assign({ server: SERVER, appid: APPID }, options));
  instances.push(wa);
  return wa;
}

// Let pending microtasks (fake wx answers, promise chains) run.
const settle = () => new Promise((resolve) => setImmediate(resolve));

let instances = [];
let warnings = [];

beforeEach((t) => {
  instances = [];
  warnings = [];
  t.mock.method(console, 'warn', (msg) => warnings.push(String(msg)));
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: NOW });
});

afterEach(() => {
  instances.forEach((wa) => wa.stop());
  delete global.wx;
});

test('each show records one visit with the device and a unique event_id', async () => {
  const wx = createWx({ system: IOS });
  const wa = launch(wx);
  wx.show();
  wx.show();
  const queue = wa._state().queue;
  assert.equal(queue.length, 2);
  for (const v of queue) {
    assert.equal(v.platform, 'ios');
    assert.equal(v.brand, 'iPhone');
    assert.equal(v.model, 'iPhone 13<iPhone14,5>');
    assert.equal(v.time, NOW);
    assert.match(v.event_id, /^[0-9a-f]{32}$/);
    assert.match(v.openid, /^anon-[0-9a-f]{16}$/);
    const fields = ['brand', 'event_id', 'model', 'openid', 'platform', 'time'];
    assert.deepEqual(Object.keys(v).sort(), fields);
  }
  assert.notEqual(queue[0].event_id, queue[1].event_id);

  const result = await wa.flush();
  assert.deepEqual(result, { ok: true, remaining: 0 });
  assert.equal(wx.requests.length, 1);
  const req = wx.requests[0];
  assert.equal(req.url, `${SERVER}/collect?appid=${APPID}`);
  assert.equal(req.method, 'POST');
  assert.equal(req.header['content-type'], 'application/json');
  assert.deepEqual(wx.sent(0), queue);
  assert.equal(wa._state().stats.accepted, 2);
});

test('android device values are sent as wx reports them', async () => {
  const wx = createWx({ system: ANDROID });
  const wa = launch(wx);
  wx.show();
  await wa.flush();
  const [v] = wx.sent(0);
  assert.equal(v.platform, 'android');
  assert.equal(v.brand, 'HUAWEI');
  assert.equal(v.model, 'NOH-AN00');
});

test('onShow() records a visit for base libraries without wx.onAppShow', async () => {
  const wx = createWx();
  delete wx.onAppShow;
  delete wx.onAppHide;
  const wa = launch(wx);
  assert.equal(wa._state().queue.length, 0);
  const v = wa.onShow({ path: 'pages/index/index', scene: 1001 });
  assert.equal(v.platform, 'ios');
  assert.equal(wa._state().queue.length, 1);
});

test('autoTrack: false leaves onAppShow alone', () => {
  const wx = createWx();
  const wa = launch(wx, { autoTrack: false });
  wx.show();
  assert.equal(wa._state().queue.length, 0);
  wa.onShow();
  assert.equal(wa._state().queue.length, 1);
});

test('recordVisit merges extra fields but keeps its own event_id', () => {
  const wx = createWx();
  const wa = launch(wx);
  const v = wa.recordVisit({ gender: 1, age: 30, event_id: 'mine' });
  assert.equal(v.gender, 1);
  assert.equal(v.age, 30);
  assert.match(v.event_id, /^[0-9a-f]{32}$/);
});

test('the anonymous id is persisted, then replaced by setOpenid for new visits', async () => {
  const storage = new Map();
  const wx = createWx({ storage });
  let wa = launch(wx);
  const anon = wa._state().anonId;
  assert.match(anon, /^anon-[0-9a-f]{16}$/);
  assert.equal(wx.getStorageSync('weanalysis_anon_id'), anon);
  wx.show();

  // Another launch on the same device keeps the same anonymous user.
  wa.stop();
  wa = launch(createWx({ storage }));
  assert.equal(wa._state().anonId, anon);
  wa.recordVisit();

  wa.setOpenid('oWx_real_openid_123');
  wa.recordVisit();
  const queue = wa._state().queue;
  assert.deepEqual(
    queue.map((v) => v.openid),
    [anon, anon, 'oWx_real_openid_123'] // visits already recorded keep their openid
  );

  // The real openid is persisted too: the next launch uses it from its first visit.
  wa.stop();
  wa = launch(createWx({ storage }));
  assert.equal(wa.recordVisit().openid, 'oWx_real_openid_123');

  // Invalid ids are ignored with a warning; a falsy one goes back to anonymous.
  wa.setOpenid('bad\nid');
  assert.equal(wa.recordVisit().openid, 'oWx_real_openid_123');
  assert.equal(warnings.length, 1);
  wa.setOpenid(null);
  assert.equal(wa.recordVisit().openid, anon);
});

test('setOpenid before init is kept', () => {
  const wx = createWx();
  global.wx = wx;
  delete require.cache[require.resolve(SDK)];
  const wa = require(SDK);
  instances.push(wa);
  wa.setOpenid('oEarly');
  wa.init({ server: SERVER, appid: APPID });
  assert.equal(wa.recordVisit().openid, 'oEarly');
  assert.equal(wx.getStorageSync('weanalysis_openid'), 'oEarly');
});

test('visits are sent in batches of batchSize, one request at a time, oldest first', async () => {
  const wx = createWx();
  const wa = launch(wx);
  const ids = [];
  for (let i = 0; i < 120; i++) ids.push(wa.recordVisit().event_id);
  const result = await wa.flush();
  assert.equal(result.ok, true);
  assert.deepEqual(
    wx.requests.map((r) => r.data.length),
    [50, 50, 20]
  );
  assert.deepEqual([0, 1, 2].flatMap((i) => wx.sentIds(i)), ids);
  assert.equal(wx.maxInFlight, 1);
  assert.equal(wx.server.accepted, 120);

  const wx2 = createWx();
  const wa2 = launch(wx2, { batchSize: 7 });
  for (let i = 0; i < 15; i++) wa2.recordVisit();
  await wa2.flush();
  assert.deepEqual(
    wx2.requests.map((r) => r.data.length),
    [7, 7, 1]
  );
});

test('batchSize is capped at the server limit of 50', () => {
  const wa = launch(createWx(), { batchSize: 500 });
  assert.equal(wa._state().config.batchSize, 50);
});

test('a batch never exceeds the 256 KiB body limit', async () => {
  const wx = createWx();
  const wa = launch(wx);
  const big = '画'.repeat(20000); // 60,000 bytes of UTF-8
  for (let i = 0; i < 10; i++) wa.recordVisit({ note: big });
  await wa.flush();
  const sizes = wx.requests.map((r) => Buffer.byteLength(JSON.stringify(r.data)));
  assert.deepEqual(
    wx.requests.map((r) => r.data.length),
    [4, 4, 2]
  );
  assert.ok(sizes.every((n) => n <= 256 * 1024), sizes);
  // A visit that could never fit in a request is not queued at all.
  assert.equal(wa.recordVisit({ note: 'x'.repeat(300 * 1024) }), null);
  assert.equal(wa._state().queue.length, 0);
});

test('visits are sent flushInterval after being queued, and when the app hides', async (t) => {
  const wx = createWx();
  launch(wx); // default flushInterval: 5 s
  wx.show();
  t.mock.timers.tick(4999);
  await settle();
  assert.equal(wx.requests.length, 0);
  t.mock.timers.tick(1);
  await settle();
  assert.equal(wx.requests.length, 1);

  wx.show(); // the user leaves right after: no need to wait for the timer
  wx.hide();
  await settle();
  assert.equal(wx.requests.length, 2);
  t.mock.timers.tick(60_000);
  await settle();
  assert.equal(wx.requests.length, 2); // and nothing is sent twice
});

test('transient failures are retried with backoff, with the same event_ids', async (t) => {
  const wx = createWx();
  const wa = launch(wx, { flushInterval: 0 });
  wx.script = ['fail', 'http500', 'http429', 'errcode45011', 'timeout', 'http503', 'ok'];
  wx.show();
  wx.show();
  const ids = wa._state().queue.map((v) => v.event_id);

  t.mock.timers.tick(0);
  await settle();
  assert.equal(wx.requests.length, 1);
  // After the n-th failure the next attempt comes within [d/2, d], d = 1 s, 2 s, 4 s ...
  for (const d of [1000, 2000, 4000, 8000, 16000, 32000]) {
    const n = wx.requests.length;
    assert.equal(wa._state().queue.length, 2, 'a failed batch stays queued');
    t.mock.timers.tick(d / 2 - 1);
    await settle();
    assert.equal(wx.requests.length, n, `no retry before ${d / 2} ms`);
    t.mock.timers.tick(d / 2 + 1);
    await settle();
    assert.equal(wx.requests.length, n + 1, `a retry by ${d} ms`);
  }
  for (let i = 0; i < wx.requests.length; i++) assert.deepEqual(wx.sentIds(i), ids);
  assert.equal(wa._state().queue.length, 0);
  assert.equal(wa._state().attempt, 0, 'success resets the backoff');
  assert.equal(wx.server.accepted, 2);

  // No resend after the success.
  t.mock.timers.tick(10 * 60_000);
  await settle();
  assert.equal(wx.requests.length, 7);
  assert.equal(await wa.flush().then((r) => r.ok), true);
  assert.equal(wx.requests.length, 7);
  assert.deepEqual(wx.getStorageSync(`weanalysis_queue_${APPID}`), []);
});

test('new visits do not cut a backoff wait short; flush() does', async (t) => {
  const wx = createWx();
  const wa = launch(wx, { flushInterval: 0 });
  wx.script = ['fail', 'fail', 'fail'];
  wx.show();
  t.mock.timers.tick(0);
  await settle();
  t.mock.timers.tick(1000);
  await settle();
  assert.equal(wx.requests.length, 2);
  wx.show();
  wx.show();
  t.mock.timers.tick(999); // the second backoff is at least 1000 ms
  await settle();
  assert.equal(wx.requests.length, 2);
  const r = await wa.flush();
  assert.deepEqual(r, { ok: false, remaining: 3 });
  assert.equal(wx.requests.length, 3);
  assert.equal(wa._state().attempt, 3);
});

test('the backoff is capped at 5 minutes', async () => {
  const wx = createWx();
  const wa = launch(wx);
  wx.defaultOutcome = 'fail';
  wx.show();
  for (let i = 0; i < 25; i++) await wa.flush();
  const s = wa._state();
  assert.equal(s.attempt, 25);
  const wait = s.timerDue - Date.now();
  assert.ok(wait >= 150_000 && wait <= 300_000, wait);
});

test('a retry after a lost answer has the same event_ids: the server dedupes it', async () => {
  const wx = createWx();
  const wa = launch(wx);
  wx.script = ['lost'];
  wx.show();
  wx.show();
  assert.deepEqual(await wa.flush(), { ok: false, remaining: 2 });
  assert.equal(wx.server.events.size, 2); // the server did store them
  assert.deepEqual(await wa.flush(), { ok: true, remaining: 0 });
  assert.deepEqual(wx.sentIds(1), wx.sentIds(0));
  assert.equal(wx.server.events.size, 2);
  assert.equal(wx.server.duplicates, 2);
  assert.equal(wa._state().stats.duplicates, 2);

  // Later batches hold only new visits.
  wx.show();
  await wa.flush();
  assert.equal(wx.requests.length, 3);
  assert.equal(wx.sent(2).length, 1);
  assert.ok(!wx.sentIds(0).includes(wx.sentIds(2)[0]));
});

test('an unreadable 200 answer (captive portal) keeps the batch', async () => {
  const wx = createWx();
  const wa = launch(wx);
  wx.script = ['html'];
  wx.show();
  assert.equal((await wa.flush()).ok, false);
  assert.equal(wa._state().queue.length, 1);
  assert.equal((await wa.flush()).ok, true);
  assert.equal(wx.server.accepted, 1);
});

test('errcode 47001 drops the batch, warns once, and the next batch still goes', async () => {
  const wx = createWx();
  const wa = launch(wx, { batchSize: 2 });
  wx.script = ['errcode47001', 'errcode47001', 'ok'];
  for (let i = 0; i < 5; i++) wx.show();
  const ids = wa._state().queue.map((v) => v.event_id);
  assert.deepEqual(await wa.flush(), { ok: true, remaining: 0 });
  assert.equal(wx.requests.length, 3);
  assert.deepEqual(wx.sentIds(2), ids.slice(4));
  assert.equal(wa._state().stats.droppedFatal, 4);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /47001/);
  assert.equal(wa._state().attempt, 0);
  assert.deepEqual(wx.getStorageSync(`weanalysis_queue_${APPID}`), []);
});

test('unknown appid (40013), empty body (44002) and HTTP 413 are dropped too', async () => {
  for (const outcome of ['errcode40013', 'errcode44002', 'http413']) {
    const wx = createWx();
    const wa = launch(wx);
    wx.script = [outcome];
    wx.show();
    assert.deepEqual(await wa.flush(), { ok: true, remaining: 0 }, outcome);
    assert.equal(wx.requests.length, 1);
  }
});

test('one request in flight at a time; the queue is updated before the next batch', async () => {
  const wx = createWx();
  const wa = launch(wx, { batchSize: 2 });
  wx.script = ['hold'];
  for (let i = 0; i < 3; i++) wx.show();
  const first = wa.flush();
  const again = wa.flush();
  wx.show();
  wx.hide();
  await settle();
  assert.equal(wx.requests.length, 1);
  assert.equal(wa._state().inflight.length, 2);

  let queueWhenSecondSent;
  wx.script = [
    (opts) => {
      const stored = wx.getStorageSync(`weanalysis_queue_${APPID}`);
      queueWhenSecondSent = stored.map((v) => v.event_id);
      const data = { errcode: 0, accepted: 2, duplicates: 0, filtered: 0, rejected: [] };
      opts.success({ statusCode: 200, data });
    },
  ];
  wx.release('ok');
  assert.deepEqual(await first, { ok: true, remaining: 0 });
  assert.equal(await again, await first);
  assert.equal(wx.requests.length, 2);
  // When the second request went out, the first batch was already gone from storage.
  assert.deepEqual(queueWhenSecondSent, wx.sentIds(1));
  assert.equal(wx.maxInFlight, 1);
});

test('the queue survives a restart, including a batch that was in flight', async () => {
  const storage = new Map();
  const wx1 = createWx({ storage });
  const wa1 = launch(wx1);
  wx1.script = ['hold'];
  wx1.show();
  wx1.show();
  wa1.flush(); // in flight when the app is killed
  await settle();
  wx1.show();
  const ids = wa1._state().queue.map((v) => v.event_id);
  assert.equal(ids.length, 3);
  wa1.stop(); // the process dies: nothing more from this instance

  const wx2 = createWx({ storage });
  const wa2 = launch(wx2);
  assert.deepEqual(
    wa2._state().queue.map((v) => v.event_id),
    ids
  );
  assert.deepEqual(await wa2.flush(), { ok: true, remaining: 0 });
  assert.deepEqual(wx2.sentIds(0), ids);
});

test('leftovers from a previous run are sent without a new visit', async (t) => {
  const storage = new Map();
  const wx1 = createWx({ storage });
  wx1.defaultOutcome = 'fail';
  const wa1 = launch(wx1);
  wx1.show();
  await wa1.flush();
  wa1.stop();

  const wx2 = createWx({ storage });
  launch(wx2);
  t.mock.timers.tick(5000);
  await settle();
  assert.equal(wx2.requests.length, 1);
  assert.equal(wx2.server.accepted, 1);
});

test('maxQueue bounds the queue, dropping (and counting) the oldest visits', async () => {
  const wx = createWx();
  const wa = launch(wx, { maxQueue: 5 });
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push(wa.recordVisit().event_id);
  const s = wa._state();
  assert.deepEqual(
    s.queue.map((v) => v.event_id),
    ids.slice(3)
  );
  assert.equal(s.stats.droppedOverflow, 3);
  assert.equal(wx.getStorageSync(`weanalysis_queue_${APPID}`).length, 5);
});

test('maxQueue never drops the batch in flight', async () => {
  const wx = createWx();
  const wa = launch(wx, { maxQueue: 3, batchSize: 2 });
  wx.script = ['hold'];
  const ids = [wa.recordVisit().event_id, wa.recordVisit().event_id];
  wa.flush();
  for (let i = 0; i < 3; i++) ids.push(wa.recordVisit().event_id);
  assert.deepEqual(
    wa._state().queue.map((v) => v.event_id),
    [ids[0], ids[1], ids[4]]
  );
  wx.release('ok');
  assert.deepEqual(await wa.flush(), { ok: true, remaining: 0 });
  assert.equal(wx.server.accepted, 3);
});

test('event ids are unique and 16 bytes of hex', () => {
  const wa = launch(createWx(), { maxQueue: 10 });
  const seen = new Set();
  // All in the same (mocked) millisecond.
  for (let i = 0; i < 20000; i++) seen.add(wa.recordVisit().event_id);
  assert.equal(seen.size, 20000);
  for (const id of seen) assert.match(id, /^[0-9a-f]{32}$/);
});

test('init validates its options', () => {
  global.wx = createWx();
  delete require.cache[require.resolve(SDK)];
  const wa = require(SDK);
  assert.throws(() => wa.init({ appid: APPID }), /server/);
  assert.throws(() => wa.init({ server: SERVER }), /appid/);
  assert.throws(() => wa.init({ server: SERVER, appid: 'bad appid' }), /appid/);
  assert.equal(wa.recordVisit(), null); // not initialised
});
