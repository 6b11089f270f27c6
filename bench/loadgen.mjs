// Open-loop HTTP load generator for the latency benchmark (Node, no dependencies).
// Sends `rate` POSTs per second for `seconds` seconds over keep-alive connections, cycling the
// given bodies, and prints one JSON line: latencies are measured from each request's scheduled
// start, so queueing in a server that falls behind is counted (no coordinated omission).
// usage: node loadgen.mjs URL RATE SECONDS CONNECTIONS BODY...
import http from "node:http";

const [url, rate, seconds, conns, ...bodies] = process.argv.slice(2);
const total = Math.round(Number(rate) * Number(seconds));
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conns) });
const lat = new Float64Array(total);
let done = 0, errors = 0;
const t0 = performance.now() + 200;

function fire(i) {
  const scheduled = t0 + (i * 1000) / Number(rate);
  const body = bodies[i % bodies.length];
  const req = http.request(url, { method: "POST", agent, headers: { "content-length": Buffer.byteLength(body) } }, (res) => {
    const chunks = [];
    res.on("data", (c) => chunks.push(c));
    res.on("end", () => {
      lat[i] = performance.now() - scheduled;
      const text = Buffer.concat(chunks).subarray(0, 20).toString();
      if (res.statusCode !== 200 || text.includes('"errcode"')) errors++;
      if (++done === total) finish();
    });
  });
  req.on("error", () => { errors++; lat[i] = performance.now() - scheduled; if (++done === total) finish(); });
  req.end(body);
}

let next = 0;
function tick() {
  const now = performance.now();
  while (next < total && t0 + (next * 1000) / Number(rate) <= now) fire(next++);
  if (next < total) setTimeout(tick, 1);
}
setTimeout(tick, 200);

function finish() {
  const elapsed = (performance.now() - t0) / 1000;
  const sorted = Array.from(lat).sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  console.log(JSON.stringify({ requests: total, rate: total / elapsed, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: sorted[sorted.length - 1], errors }));
  agent.destroy();
}
