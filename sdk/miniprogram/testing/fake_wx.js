/*
 * A fake `wx` for running the SDK under Node: in-memory storage (values go through JSON, as
 * wx storage serialises them), system info, onAppShow/onAppHide registries, and a `request`
 * whose outcome each test scripts. Kept outside test/ so that `node --test` does not run it.
 *
 * The default request handler is an in-memory /collect: it dedupes by event_id like the real
 * server and answers {errcode: 0, accepted, duplicates, filtered, rejected}. Scripted outcomes:
 *   'ok'            answer normally
 *   'lost'          store the batch, then report a network failure (the answer was lost)
 *   'fail'          network failure before the server saw anything
 *   'timeout'       same, with wx's timeout message
 *   'http500', 'http502', 'http503', 'http429', 'http413', 'http404'   that status, no errcode
 *   'errcode45011', 'errcode47001', 'errcode40013', 'errcode44002'     HTTP 200 with that errcode
 *   'html'          HTTP 200 with an HTML page (a captive portal)
 *   'hold'          keep the request pending until wx.release(outcome) is called
 * A function may stand in for an outcome: it receives the request options and answers itself.
 */
'use strict';

const IOS = {
  platform: 'ios',
  brand: 'iPhone',
  model: 'iPhone 13<iPhone14,5>',
  system: 'iOS 16.1',
};
const ANDROID = { platform: 'android', brand: 'HUAWEI', model: 'NOH-AN00', system: 'Android 12' };

function createWx(options = {}) {
  const storage = options.storage || new Map();
  const system = options.system || IOS;
  const showListeners = [];
  const hideListeners = [];
  const wx = {
    storage,
    requests: [], // every request's options, in order
    script: [], // outcomes for the next requests; then defaultOutcome
    defaultOutcome: 'ok',
    held: [],
    inFlight: 0,
    maxInFlight: 0,
    server: { events: new Map(), accepted: 0, duplicates: 0 },

    getStorageSync(key) {
      return storage.has(key) ? JSON.parse(storage.get(key)) : '';
    },
    setStorageSync(key, value) {
      storage.set(key, JSON.stringify(value));
    },
    removeStorageSync(key) {
      storage.delete(key);
    },
    getSystemInfoSync() {
      const common = { pixelRatio: 3, language: 'zh_CN', version: '8.0.40', SDKVersion: '3.2.0' };
      return Object.assign(common, system);
    },
    onAppShow(cb) {
      showListeners.push(cb);
    },
    offAppShow(cb) {
      const i = showListeners.indexOf(cb);
      if (i >= 0) showListeners.splice(i, 1);
    },
    onAppHide(cb) {
      hideListeners.push(cb);
    },
    offAppHide(cb) {
      const i = hideListeners.indexOf(cb);
      if (i >= 0) hideListeners.splice(i, 1);
    },
    // Drive the app lifecycle like the WeChat client would.
    show(res = { path: 'pages/index/index', scene: 1001, query: {} }) {
      showListeners.slice().forEach((cb) => cb(res));
    },
    hide() {
      hideListeners.slice().forEach((cb) => cb());
    },

    request(opts) {
      wx.requests.push(opts);
      wx.inFlight++;
      wx.maxInFlight = Math.max(wx.maxInFlight, wx.inFlight);
      const outcome = wx.script.length ? wx.script.shift() : wx.defaultOutcome;
      if (outcome === 'hold') {
        wx.held.push(opts);
        return {};
      }
      answer(opts, outcome);
      return {};
    },
    // Answer the oldest held request.
    release(outcome = 'ok') {
      answer(wx.held.shift(), outcome);
    },
    // The records of request i, as the server would parse them.
    sent(i) {
      const d = wx.requests[i].data;
      return JSON.parse(typeof d === 'string' ? d : JSON.stringify(d));
    },
    sentIds(i) {
      return [].concat(wx.sent(i)).map((v) => v.event_id);
    },
  };

  // The in-memory /collect.
  function collect(opts) {
    const records = [].concat(wx.sent(wx.requests.indexOf(opts)));
    let accepted = 0;
    let duplicates = 0;
    for (const r of records) {
      if (wx.server.events.has(r.event_id)) duplicates++;
      else {
        wx.server.events.set(r.event_id, r);
        accepted++;
      }
    }
    wx.server.accepted += accepted;
    wx.server.duplicates += duplicates;
    return { errcode: 0, accepted, duplicates, filtered: 0, rejected: [] };
  }

  function answer(opts, outcome) {
    // wx.request always calls back asynchronously.
    queueMicrotask(() => {
      wx.inFlight--;
      if (typeof outcome === 'function') return outcome(opts);
      const ok = (statusCode, data) => opts.success({ statusCode, data, header: {} });
      const m = /^(http|errcode)(\d+)$/.exec(outcome);
      if (outcome === 'ok') ok(200, collect(opts));
      else if (outcome === 'lost') {
        collect(opts);
        opts.fail({ errMsg: 'request:fail timeout' });
      } else if (outcome === 'fail') opts.fail({ errMsg: 'request:fail' });
      else if (outcome === 'timeout') opts.fail({ errMsg: 'request:fail timeout' });
      else if (outcome === 'html') ok(200, '<html><body>Please log in to the Wi-Fi</body></html>');
      else if (m && m[1] === 'http') ok(Number(m[2]), `<html>${m[2]}</html>`);
      else if (m) ok(200, { errcode: Number(m[2]), errmsg: `errcode ${m[2]}` });
      else throw new Error(`fake wx: unknown outcome ${outcome}`);
    });
  }

  return wx;
}

module.exports = { createWx, IOS, ANDROID };
