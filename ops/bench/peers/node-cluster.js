// The Node peer: Node's cluster module, WORKERS workers sharing one port (as
// PM2's cluster mode runs it), answering what the fazt bench apps answer:
//   /static4k  4096 bytes held in memory, as a static file server would
//   /kv        read one key and write one key in a SQLite file (KV_DB, WAL),
//              as the fazt kv app does with fazt.app.kv (only with KV_DB)
//   any other  the JSON hello {"hello":"world"}
// Prints `listening on ADDR` once every worker listens.
//   node node-cluster.js 127.0.0.1:0 [WORKERS] [KV_DB]
"use strict";
const cluster = require("node:cluster");
const http = require("node:http");

const [host, port] = (process.argv[2] || "127.0.0.1:0").split(":");
const workers = Number(process.argv[3] || 2);
const kvPath = process.argv[4];
const hello = JSON.stringify({ hello: "world" });
const static4k = Buffer.alloc(4096, "x");

// The same settings fazt gives its database: WAL, synchronous NORMAL, and a
// busy timeout (better-sqlite3's default, 5 s) for the two workers' writers.
function openKv() {
  const Database = require("better-sqlite3");
  const db = new Database(kvPath);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL)`);
  return db;
}

if (cluster.isPrimary) {
  // The table exists before any worker opens the file.
  if (kvPath) openKv().close();
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on("message", (m) => {
      if (m && m.listening && ++listening === workers) {
        console.log(`listening on ${host}:${m.listening}`);
      }
    });
  }
  // Stopped by PID: take the workers along.
  process.on("SIGTERM", () => {
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  });
} else {
  let kv = null;
  if (kvPath) {
    const db = openKv();
    kv = {
      get: db.prepare("SELECT value FROM kv WHERE key = ?").pluck(),
      set: db.prepare(`INSERT INTO kv(key, value, updated_at) VALUES (?, ?, ?)
        ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
    };
  }
  const send = (res, status, type, body) => {
    res.writeHead(status, { "content-type": type, "content-length": body.length });
    res.end(body);
  };
  // Port 0 in every worker gets the one port the primary chose.
  const server = http.createServer((req, res) => {
    if (req.url === "/static4k") {
      send(res, 200, "text/plain", static4k);
    } else if (req.url === "/kv") {
      if (!kv) return send(res, 404, "text/plain", "no KV_DB");
      // One read and one write among 1000 keys, values as JSON text.
      const r = "k" + Math.floor(Math.random() * 1000);
      const w = "k" + Math.floor(Math.random() * 1000);
      const v = kv.get.get(r);
      const n = (v ? JSON.parse(v).n : 0) + 1;
      kv.set.run(w, JSON.stringify({ n }), Date.now());
      send(res, 200, "application/json", JSON.stringify({ key: w, n }));
    } else {
      send(res, 200, "application/json", hello);
    }
  });
  server.listen(Number(port), host, () => process.send({ listening: server.address().port }));
}
