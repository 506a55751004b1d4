// WebSocket clients for bench/gateway under Node (npm `ws`), the same protocol as
// ws_clients.py at a fraction of its CPU per frame:
//   node ws_clients.js --urls URL1,URL2 --count N [--topic fan] [--join]
// Opens N connections over the URLs in turn (200 handshakes at once), joins the topic
// where the server speaks Phoenix (and then sends a heartbeat every 30 s, as the
// phoenix client does: the gateway closes a socket silent for 60 s), counts pushes
// and the latency from the "t" (CLOCK_MONOTONIC ns at the sender) in each, and
// sockets closed by the server. Prints "ready" once all are open.
// Stdin lines: "mark" starts a window, "report" prints it as JSON, "quit" ends.
const WebSocket = require("ws");
const readline = require("readline");

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const urls = opt("--urls").split(",");
const count = Number(opt("--count"));
const topic = opt("--topic", "fan");
const join = args.includes("--join");

// process.hrtime.bigint() is CLOCK_MONOTONIC, as Python's time.monotonic_ns()
const HEARTBEAT_MS = 30000;
let frames = 0;
let closed = 0;
let last = 0n; // when the last push of the window arrived
let latencies = [];
let since = process.hrtime.bigint();
const sockets = [];

function onFrame(data) {
  const text = data.toString();
  const at = text.indexOf('"t":');
  if (at >= 0) {
    frames += 1;
    last = process.hrtime.bigint();
    const sent = BigInt(text.slice(at + 4, text.indexOf("}", at)));
    latencies.push(Number(process.hrtime.bigint() - sent));
  }
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("error", reject);
    ws.once("open", () => {
      if (!join) return resolve(ws);
      ws.send(JSON.stringify(["1", "1", topic, "phx_join", {}]));
      ws.once("message", () => resolve(ws));
    });
  });
}

async function main() {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const ws = await open(urls[i % urls.length]);
      ws.on("message", onFrame);
      ws.on("close", () => (closed += 1));
      sockets.push(ws);
    }
  };
  await Promise.all(Array.from({ length: Math.min(200, count) }, worker));
  if (join) {
    // each socket at its own phase, as clients that connected at different times
    for (const ws of sockets) {
      let ref = 0;
      const beat = () => ws.send(JSON.stringify([null, String(++ref), "phoenix", "heartbeat", {}]));
      setTimeout(() => {
        beat();
        setInterval(beat, HEARTBEAT_MS);
      }, Math.random() * HEARTBEAT_MS);
    }
  }
  console.log("ready");
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    line = line.trim();
    if (line === "mark") {
      frames = 0;
      last = 0n;
      latencies = [];
      since = process.hrtime.bigint();
    } else if (line === "report") {
      const sorted = latencies.slice().sort((a, b) => a - b);
      const pct = (p) =>
        sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] / 1e3) / 1e3 : null;
      const seconds = Number(process.hrtime.bigint() - since) / 1e9;
      console.log(JSON.stringify({ frames, closed, last_ns: String(last), seconds, p50_ms: pct(0.5), p99_ms: pct(0.99), max_ms: pct(1) }));
    } else if (line === "quit") {
      for (const ws of sockets) {
        ws.removeAllListeners("close");
        ws.terminate();
      }
      process.exit(0);
    }
  });
}

main().catch((error) => {
  console.error(String(error));
  process.exit(1);
});
