// Load generator for the /collect benchmark (Node, no dependencies): `conns` keep-alive
// connections each send batches of `batch` visits back to back for `seconds` seconds; prints
// one JSON line with records/s, errors and request latencies. Loopback only, bounded in time.
// usage: node collect_load.mjs URL SECONDS CONNS BATCH USERS
import http from "node:http";

const [url, seconds, conns, batch, users] = process.argv.slice(2).map((v, i) => (i ? Number(v) : v));
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
const phones = [
  ["ios", "iPhone", "iPhone 14 Pro<iPhone15,2>"], ["ios", "iPhone", "iPhone 13<iPhone14,5>"],
  ["android", "HUAWEI", "NOH-AN00"], ["android", "Xiaomi", "M2012K11AC"], ["android", "OPPO", "PGEM10"],
  ["android", "vivo", "V2049A"], ["android", "HONOR", "PCT-AL10"], ["ohos", "HUAWEI", "PLR-AL00"],
];
const provinces = ["广东", "江苏", "山东", "浙江", "河南", "四川", "北京", "上海"];
let seq = 0, records = 0, requests = 0, errors = 0;
const lat = [];
const end = performance.now() + seconds * 1000;

function body() {
  const now = Date.now();
  const out = [];
  for (let i = 0; i < batch; i++) {
    const u = Math.floor(Math.random() * users);
    const [platform, brand, model] = phones[u % phones.length];
    out.push({ openid: `oLoad${u.toString(36).padStart(23, "0")}`, time: now, event_id: `ev-${process.pid}-${seq++}`,
      platform, brand, model, province: provinces[u % provinces.length] });
  }
  return JSON.stringify(out);
}

function loop() {
  if (performance.now() >= end) return;
  const data = body();
  const t = performance.now();
  const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) } }, (res) => {
    const chunks = [];
    res.on("data", (c) => chunks.push(c));
    res.on("end", () => {
      lat.push(performance.now() - t);
      requests++;
      let ok = false;
      try { const a = JSON.parse(Buffer.concat(chunks)); ok = res.statusCode === 200 && a.errcode === 0 && a.accepted + a.duplicates + a.filtered === batch; } catch {}
      if (ok) records += batch; else errors++;
      loop();
    });
  });
  req.on("error", () => { errors++; setTimeout(loop, 10); });
  req.end(data);
}

const t0 = performance.now();
for (let c = 0; c < conns; c++) loop();
const timer = setInterval(() => {
  if (performance.now() < end || requests + errors < 1) return;
  clearInterval(timer);
  setTimeout(() => {
    const elapsed = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    console.log(JSON.stringify({ seconds: elapsed, records, requests, errors, records_per_s: records / elapsed, p50_ms: q(0.5), p99_ms: q(0.99) }));
    agent.destroy();
  }, 2000);
}, 100);
