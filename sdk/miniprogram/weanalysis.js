/*
 * weanalysis mini-program SDK: records one visit each time the mini-program is shown and
 * delivers it to a weanalysis server (POST /collect), durably and at most once per event_id.
 *
 *   const wa = require('./weanalysis.js')
 *   wa.init({ server: 'https://stats.example.com', appid: 'wx1234567890abcdef' })
 *   wa.setOpenid(openid)   // when the app's login flow knows it
 *
 * No dependencies, no build step, ES2017 at most (mini-program base libraries). See README.md.
 *
 * Delivery model, in short:
 * - every visit gets a random event_id when it is recorded and is appended to a queue that is
 *   persisted with wx.setStorageSync, so it survives the app being killed;
 * - batches are taken from the head of the queue and sent one request at a time; a batch leaves
 *   the queue only when the server answered errcode 0 (every record of it is then settled) or
 *   with an error that can never succeed; anything else (network failure, timeout, 429, 5xx,
 *   errcode 45011) keeps it and retries later with exponential backoff;
 * - a retry carries exactly the same records, event_id included, so when an answer was lost
 *   after the server stored the batch, the server recognises the retry as duplicates.
 */
'use strict';

var MAX_BATCH = 50; // records per request: well under the server's limit (500), small beacons
var MAX_BODY = 256 * 1024; // server limit: request body bytes
var BACKOFF_BASE = 1000;
var BACKOFF_CAP = 5 * 60 * 1000;
// Request-level errcodes that will never succeed however often the batch is sent.
var FATAL_ERRCODES = {
  40013: 'unknown appid',
  41002: 'appid missing',
  43002: 'POST required',
  44002: 'empty body',
  47001: 'malformed or too large',
};
// HTTP statuses that say the same when no errcode came with them (e.g. from a proxy).
var FATAL_STATUSES = { 400: true, 413: true, 422: true };

var DEFAULTS = {
  batchSize: MAX_BATCH,
  flushInterval: 5000, // ms between a visit being queued and its batch being sent
  maxQueue: 1000, // visits kept while offline; beyond it the oldest are dropped
  timeout: 10000, // wx.request timeout, ms
  autoTrack: true, // record a visit on wx.onAppShow and flush on wx.onAppHide
};

var S = freshState();

function freshState() {
  return {
    wx: null,
    cfg: null,
    queue: [], // visits not yet settled, oldest first; mirrored in storage
    inflight: null, // event_ids of the batch being sent, or null
    draining: null, // Promise of the running send loop, or null
    attempt: 0, // consecutive transient failures
    timer: null,
    timerDue: 0,
    listening: false,
    openid: '',
    anonId: '',
    device: null,
    warned: {},
    counter: 0,
    stats: {
      recorded: 0,
      accepted: 0,
      duplicates: 0,
      filtered: 0,
      rejected: 0,
      droppedOverflow: 0, // oldest visits dropped because the queue was full
      droppedFatal: 0, // visits dropped because the server refused their request for good
      requests: 0,
      failures: 0, // transient failures
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Public API

function init(options) {
  var o = options || {};
  var w = typeof wx !== 'undefined' ? wx : null; // captured: later calls use this very object
  if (!w || typeof w.request !== 'function') throw new Error('weanalysis: wx is not available');
  if (typeof o.server !== 'string' || !/^https?:\/\//.test(o.server)) {
    throw new Error('weanalysis: init needs server, e.g. "https://stats.example.com"');
  }
  if (typeof o.appid !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(o.appid)) {
    throw new Error('weanalysis: init needs a valid appid');
  }
  stopTimer();
  var cfg = Object.assign({}, DEFAULTS);
  Object.keys(DEFAULTS).forEach(function (k) {
    if (o[k] !== undefined) cfg[k] = o[k];
  });
  cfg.server = o.server.replace(/\/+$/, '');
  cfg.appid = o.appid;
  cfg.maxQueue = Math.max(1, Math.floor(Number(cfg.maxQueue)) || DEFAULTS.maxQueue);
  // A batch must fit both the server's limit and the queue (so a full queue always has
  // something outside the in-flight batch to drop).
  cfg.batchSize = Math.min(
    Math.max(1, Math.floor(Number(cfg.batchSize)) || MAX_BATCH),
    MAX_BATCH,
    cfg.maxQueue
  );
  cfg.flushInterval = Math.max(0, Number(cfg.flushInterval) || 0);
  S.wx = w;
  S.cfg = cfg;
  S.queue = loadQueue();
  if (S.openid) save(KEYS.openid, S.openid); // setOpenid was called before init
  else S.openid = load(KEYS.openid) || '';
  S.anonId = load(KEYS.anon) || '';
  if (!S.anonId) {
    S.anonId = 'anon-' + randomHex();
    save(KEYS.anon, S.anonId);
  }
  if (cfg.autoTrack && !S.listening) {
    S.listening = true;
    // wx.onAppShow (base library >= 2.1.2) fires exactly when App.onShow does, so the app
    // does not have to forward anything; older libraries call wa.onShow() from App.onShow.
    if (typeof w.onAppShow === 'function') w.onAppShow(onAppShow);
    if (typeof w.onAppHide === 'function') w.onAppHide(onAppHide);
  }
  if (S.queue.length) schedule(cfg.flushInterval); // leftovers from a previous run
  return api;
}

// The user's real openid from the app's login flow. It is persisted (wx storage is private to
// the mini-program and the WeChat user), so later launches use it from their first visit.
// A falsy id goes back to the anonymous id. Visits already recorded keep their openid.
function setOpenid(id) {
  if (!id) {
    S.openid = '';
    remove(KEYS.openid);
    return;
  }
  // eslint-disable-next-line no-control-regex
  if (typeof id !== 'string' || id.length > 128 || /[\u0000-\u001f\u007f]/.test(id)) {
    warnOnce('openid', 'weanalysis: setOpenid ignored an invalid openid');
    return;
  }
  S.openid = id;
  save(KEYS.openid, id);
}

// Queue one visit now. `extra` fields are merged into the record (e.g. {gender: 1}), except
// event_id, which the SDK owns. Returns a copy of the record, or null if it was not queued.
function recordVisit(extra) {
  if (!S.cfg) {
    warnOnce('init', 'weanalysis: call init() before recording visits');
    return null;
  }
  var d = device();
  var visit = { openid: S.openid || S.anonId, time: Date.now() };
  if (d.platform) visit.platform = d.platform;
  if (d.brand) visit.brand = d.brand;
  if (d.model) visit.model = d.model;
  if (extra && typeof extra === 'object') Object.assign(visit, extra);
  visit.event_id = newEventId();
  if (jsonBytes(visit) + 2 > MAX_BODY) {
    warnOnce('size', 'weanalysis: visit larger than a request may be, dropped');
    return null;
  }
  S.stats.recorded++;
  S.queue.push(visit);
  trim();
  persist();
  if (!S.draining) schedule(S.cfg.flushInterval);
  return Object.assign({}, visit);
}

// For base libraries without wx.onAppShow (or with autoTrack: false): call from App.onShow.
// (The show options' path/scene are not sent: the server ignores them today.)
function onShow() {
  return recordVisit();
}

// Send everything queued now, ignoring any backoff wait. Resolves (never rejects) once the
// queue is empty ({ok: true}) or a transient failure stopped the loop ({ok: false}); in that
// case the retry is already scheduled.
function flush() {
  if (!S.cfg) return Promise.resolve({ ok: false, remaining: 0 });
  return drain();
}

// Stop timers and listeners (tests, hot reload). The queue stays in storage.
function stop() {
  stopTimer();
  var w = S.wx;
  if (S.listening && w) {
    if (typeof w.offAppShow === 'function') w.offAppShow(onAppShow);
    if (typeof w.offAppHide === 'function') w.offAppHide(onAppHide);
  }
  S.listening = false;
}

// A snapshot of the internals, for tests and debugging.
function _state() {
  return {
    config: S.cfg && Object.assign({}, S.cfg),
    queue: S.queue.map(function (v) {
      return Object.assign({}, v);
    }),
    inflight: S.inflight && S.inflight.slice(),
    attempt: S.attempt,
    timerDue: S.timer ? S.timerDue : null,
    openid: S.openid,
    anonId: S.anonId,
    stats: Object.assign({}, S.stats),
  };
}

// ---------------------------------------------------------------------------------------------
// Sending

// One send loop at a time: batches go out strictly one after the other, each removed from the
// (persisted) queue before the next one is taken.
function drain() {
  if (S.draining) return S.draining;
  stopTimer();
  var resolve;
  S.draining = new Promise(function (r) {
    resolve = r;
  });
  var result = S.draining;
  function next() {
    var batch = takeBatch();
    if (!batch) return end(true);
    send(batch, function (settled) {
      if (settled) next();
      else end(false);
    });
  }
  function end(ok) {
    S.draining = null;
    if (ok) {
      S.attempt = 0;
    } else {
      S.attempt++;
      schedule(backoffDelay(S.attempt), true);
    }
    resolve({ ok: ok, remaining: S.queue.length });
  }
  next();
  return result;
}

// The oldest visits, as many as batchSize and the body limit allow.
function takeBatch() {
  var batch = [];
  var bytes = 2; // the brackets
  for (var i = 0; i < S.queue.length && batch.length < S.cfg.batchSize; i++) {
    var n = jsonBytes(S.queue[i]) + (batch.length ? 1 : 0);
    if (bytes + n > MAX_BODY) break;
    bytes += n;
    batch.push(S.queue[i]);
  }
  if (!batch.length && S.queue.length) {
    // Only a record stored by an older version could be this large: it can never be sent.
    settle([S.queue[0].event_id]);
    S.stats.droppedFatal++;
    return takeBatch();
  }
  return batch.length ? batch : null;
}

// done(true): the batch left the queue; done(false): it stays, retry later.
function send(batch, done) {
  var ids = batch.map(function (v) {
    return v.event_id;
  });
  var finished = false;
  function finish(res, err) {
    if (finished) return; // defensive: act on the first callback only
    finished = true;
    S.inflight = null;
    var outcome = classify(res, err);
    if (outcome === 'ok') {
      var d = res.data;
      S.stats.accepted += d.accepted || 0;
      S.stats.duplicates += d.duplicates || 0;
      S.stats.filtered += d.filtered || 0;
      var rejected = Array.isArray(d.rejected) ? d.rejected : [];
      S.stats.rejected += rejected.length;
      if (rejected.length) {
        warnOnce('rejected', 'weanalysis: server rejected a visit: ' + rejected[0].reason);
      }
      settle(ids); // persisted before the next batch is taken
      done(true);
    } else if (outcome === 'drop') {
      var code = res.data && res.data.errcode;
      var why = code
        ? 'errcode ' + code + ' ' + (res.data.errmsg || FATAL_ERRCODES[code])
        : 'HTTP ' + res.statusCode;
      warnOnce(
        'fatal' + (code || res.statusCode),
        'weanalysis: ' + batch.length + ' visits dropped, the server refused them for good: ' + why
      );
      S.stats.droppedFatal += batch.length;
      settle(ids);
      done(true);
    } else {
      S.stats.failures++;
      done(false);
    }
  }
  S.inflight = ids;
  S.stats.requests++;
  try {
    S.wx.request({
      url: S.cfg.server + '/collect?appid=' + encodeURIComponent(S.cfg.appid),
      method: 'POST',
      data: batch, // serialised as JSON because of the content type
      header: { 'content-type': 'application/json' },
      dataType: 'json',
      timeout: S.cfg.timeout,
      success: function (res) {
        finish(res, null);
      },
      fail: function (err) {
        finish(null, err || {});
      },
    });
  } catch (e) {
    finish(null, e);
  }
}

// 'ok': every record of the batch is settled; 'drop': the request can never succeed;
// 'retry': anything else, including answers we cannot read (a captive portal's HTML page
// comes with status 200 too): only an explicit errcode 0 may remove visits from the queue.
function classify(res, err) {
  if (err || !res) return 'retry';
  var status = res.statusCode;
  var data = res.data;
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch (e) {
      data = null;
    }
    res.data = data;
  }
  if (status === 429 || status >= 500) return 'retry';
  var code = data && typeof data === 'object' ? data.errcode : undefined;
  if (code === 0 && status >= 200 && status < 300) return 'ok';
  if (FATAL_ERRCODES[code]) return 'drop';
  if (code === undefined && FATAL_STATUSES[status]) return 'drop';
  return 'retry'; // 45011 (rate limited), unknown errcodes, other statuses
}

// 1 s, 2 s, 4 s ... capped at 5 min, each drawn from [d/2, d] so that devices that went
// offline together do not come back in lockstep.
function backoffDelay(attempt) {
  var d = Math.min(BACKOFF_CAP, BACKOFF_BASE * Math.pow(2, Math.min(attempt - 1, 30)));
  return Math.round(d / 2 + (Math.random() * d) / 2);
}

// Remove settled visits (by event_id: the queue may have been trimmed meanwhile) and persist.
function settle(ids) {
  var gone = {};
  ids.forEach(function (id) {
    gone[id] = true;
  });
  S.queue = S.queue.filter(function (v) {
    return !gone[v.event_id];
  });
  persist();
}

// Keep at most maxQueue visits, dropping the oldest ones that are not being sent right now.
function trim() {
  var sending = {};
  (S.inflight || []).forEach(function (id) {
    sending[id] = true;
  });
  for (var i = 0; S.queue.length > S.cfg.maxQueue && i < S.queue.length; ) {
    if (sending[S.queue[i].event_id]) i++;
    else {
      S.queue.splice(i, 1);
      S.stats.droppedOverflow++;
    }
  }
}

// One timer: the flush interval after a visit is queued, or the backoff wait after a failure.
// An existing timer is kept unless `replace` (a backoff wait must not be cut short by new visits).
function schedule(ms, replace) {
  if (S.timer && !replace) return;
  stopTimer();
  S.timerDue = Date.now() + ms;
  S.timer = setTimeout(function () {
    S.timer = null;
    drain();
  }, ms);
}

function stopTimer() {
  if (S.timer) clearTimeout(S.timer);
  S.timer = null;
}

function onAppShow() {
  recordVisit();
}

function onAppHide() {
  // Best effort: the app may be suspended before the answer comes; the queue is persisted anyway.
  if (S.queue.length) drain();
}

// ---------------------------------------------------------------------------------------------
// Storage, device, ids

var KEYS = {
  queue: function () {
    return 'weanalysis_queue_' + S.cfg.appid;
  },
  openid: 'weanalysis_openid',
  anon: 'weanalysis_anon_id',
};

function load(key) {
  if (!S.wx) return '';
  try {
    return S.wx.getStorageSync(key);
  } catch (e) {
    return '';
  }
}

function save(key, value) {
  if (!S.wx) return;
  try {
    S.wx.setStorageSync(key, value);
  } catch (e) {
    // Storage full or unavailable: the visits stay queued in memory for this run.
    warnOnce('storage', 'weanalysis: wx.setStorageSync failed: ' + (e && e.message));
  }
}

function remove(key) {
  if (!S.wx) return;
  try {
    S.wx.removeStorageSync(key);
  } catch (e) {
    save(key, '');
  }
}

function loadQueue() {
  var q = load(KEYS.queue());
  if (!Array.isArray(q)) return [];
  return q.filter(function (v) {
    return v && typeof v === 'object' && typeof v.event_id === 'string';
  });
}

function persist() {
  save(KEYS.queue(), S.queue);
}

// Brand, model and platform never change while the app runs: read them once.
function device() {
  if (!S.device) {
    var info = {};
    try {
      // getSystemInfoSync is what every base library has; getDeviceInfo is its newer subset.
      if (typeof S.wx.getSystemInfoSync === 'function') info = S.wx.getSystemInfoSync();
      else if (typeof S.wx.getDeviceInfo === 'function') info = S.wx.getDeviceInfo();
    } catch (e) {
      info = {};
    }
    S.device = { platform: info.platform, brand: info.brand, model: info.model };
  }
  return S.device;
}

// 16 bytes as 32 hex digits: 48-bit millisecond time, a 16-bit per-run counter (distinct ids
// within one millisecond) and 64 random bits (distinct ids across devices). Mini-programs have
// no crypto.randomUUID, and wx.getRandomValues is asynchronous, hence Math.random, which is
// enough when combined with the time and the counter.
function newEventId() {
  S.counter = (S.counter + 1) & 0xffff;
  return hex(Date.now(), 12) + hex(S.counter, 4) + randomHex();
}

function randomHex() {
  return hex(random32(), 8) + hex(random32(), 8);
}

function random32() {
  return Math.floor(Math.random() * 0x100000000);
}

function hex(n, width) {
  var s = n.toString(16);
  while (s.length < width) s = '0' + s;
  return s.slice(-width);
}

// UTF-8 length of the JSON text, as the server counts the body.
function jsonBytes(value) {
  var s = JSON.stringify(value);
  var n = 0;
  for (var i = 0; i < s.length; i++) {
    var c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      n += 4; // a surrogate pair
      i++;
    } else n += 3;
  }
  return n;
}

function warnOnce(key, message) {
  if (S.warned[key]) return;
  S.warned[key] = true;
  if (typeof console !== 'undefined') console.warn(message);
}

var api = {
  init: init,
  setOpenid: setOpenid,
  recordVisit: recordVisit,
  onShow: onShow,
  flush: flush,
  stop: stop,
  _state: _state,
};

module.exports = api;
