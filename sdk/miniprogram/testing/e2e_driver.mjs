// End-to-end driver: the SDK under Node, with a fake `wx` whose `request` does real HTTP to a
// running `weanalysis serve`. Used by tests/test_sdk_e2e.py:
//
//   node sdk/miniprogram/testing/e2e_driver.mjs http://127.0.0.1:PORT APPID
//
// Simulates a few devices (each its own storage, hence its own SDK instance) showing the app,
// one of which loses the answer to its first batch and is restarted before retrying. Prints
// one JSON object: every record the SDK created and every HTTP answer the server gave.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { createWx } = require('./fake_wx.js');
const SDK = require.resolve('../weanalysis.js');

const [server, appid] = process.argv.slice(2);
if (!server || !appid) {
  console.error('usage: e2e_driver.mjs SERVER APPID');
  process.exit(2);
}

const answers = []; // {device, status, body, lost, ids}

// A device: storage and system info of its own; `wx.loseNextAnswer` makes the next request
// reach the server but report a network failure to the SDK (the answer was lost).
function device(name, system, storage = new Map()) {
  const wx = createWx({ storage, system });
  wx.loseNextAnswer = false;
  wx.request = (opts) => {
    const body = typeof opts.data === 'string' ? opts.data : JSON.stringify(opts.data);
    const ids = [].concat(JSON.parse(body)).map((v) => v.event_id);
    fetch(opts.url, {
      method: opts.method,
      headers: opts.header,
      body,
      signal: AbortSignal.timeout(opts.timeout),
    })
      .then(async (res) => {
        const text = await res.text();
        let data = text;
        try {
          data = JSON.parse(text);
        } catch {
          // wx hands over the raw text when it is not JSON
        }
        const lost = wx.loseNextAnswer;
        wx.loseNextAnswer = false;
        answers.push({ device: name, status: res.status, body: data, lost, ids });
        if (lost) opts.fail({ errMsg: 'request:fail timeout' });
        else opts.success({ statusCode: res.status, data, header: {} });
      })
      .catch((err) => opts.fail({ errMsg: `request:fail ${err.message}` }));
    return {};
  };
  return wx;
}

// A fresh SDK instance bound to `wx`, as one launch of the mini-program.
function launch(wx) {
  globalThis.wx = wx;
  delete require.cache[SDK];
  const wa = require(SDK);
  wa.init({ server, appid, flushInterval: 60_000 }); // the driver flushes explicitly
  return wa;
}

const records = [];
function track(wa, wx) {
  const before = new Set(wa._state().queue.map((v) => v.event_id));
  wx.show();
  const added = wa._state().queue.filter((v) => !before.has(v.event_id));
  records.push(...added);
}

function check(cond, message) {
  if (!cond) {
    console.error(`e2e driver: ${message}`);
    process.exit(1);
  }
}

// alice, iOS: the openid is known before the first show (cached by the app's login flow).
{
  const wx = device('alice', { platform: 'ios', brand: 'iPhone', model: 'iPhone 13<iPhone14,5>' });
  globalThis.wx = wx;
  delete require.cache[SDK];
  const wa = require(SDK);
  wa.setOpenid('o_e2e_alice');
  wa.init({ server, appid, flushInterval: 60_000 });
  for (let i = 0; i < 3; i++) track(wa, wx);
  check((await wa.flush()).ok, 'alice flush failed');
  wa.stop();
}

// An Android device whose first visit is anonymous; then the login flow sets bob's openid.
{
  const wx = device('bob', { platform: 'android', brand: 'HUAWEI', model: 'NOH-AN00' });
  const wa = launch(wx);
  track(wa, wx);
  wa.setOpenid('o_e2e_bob');
  track(wa, wx);
  track(wa, wx);
  check((await wa.flush()).ok, 'bob flush failed');
  wa.stop();
}

// carol, Android: the answer to her first batch is lost, the app is killed, and the next
// launch sends the same batch again (the server must count it once); then one more visit.
{
  const storage = new Map();
  let wx = device('carol', { platform: 'android', brand: 'Xiaomi', model: 'M2012K11AC' }, storage);
  let wa = launch(wx);
  wa.setOpenid('o_e2e_carol');
  track(wa, wx);
  track(wa, wx);
  wx.loseNextAnswer = true;
  check(!(await wa.flush()).ok, 'carol: the lost answer should look like a failure');
  wa.stop(); // killed while waiting for the retry

  wx = device('carol', { platform: 'android', brand: 'Xiaomi', model: 'M2012K11AC' }, storage);
  wa = launch(wx);
  check(wa._state().queue.length === 2, 'carol: the unacknowledged batch should survive');
  check((await wa.flush()).ok, 'carol retry failed');
  track(wa, wx);
  check((await wa.flush()).ok, 'carol flush failed');
  wa.stop();
}

// dave, iOS: enough visits for two batches.
{
  const iphone12 = { platform: 'ios', brand: 'iPhone', model: 'iPhone 12 Pro<iPhone13,3>' };
  const wx = device('dave', iphone12);
  const wa = launch(wx);
  wa.setOpenid('o_e2e_dave');
  for (let i = 0; i < 60; i++) track(wa, wx);
  check((await wa.flush()).ok, 'dave flush failed');
  wa.stop();
}

// A developer in the WeChat devtools: the server filters these visits.
{
  const devtools = { platform: 'devtools', brand: 'devtools', model: 'iPhone 12/13 (Pro)' };
  const wx = device('dev', devtools);
  const wa = launch(wx);
  wa.setOpenid('o_e2e_developer');
  track(wa, wx);
  check((await wa.flush()).ok, 'devtools flush failed');
  wa.stop();
}

process.stdout.write(JSON.stringify({ records, answers }) + '\n');
process.exit(0);
