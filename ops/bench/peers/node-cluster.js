// The Node peer: a JSON hello from Node's cluster module, 2 workers sharing
// one port (as PM2's cluster mode runs it). Prints `listening on ADDR`.
//   node node-cluster.js 127.0.0.1:0 [WORKERS]
"use strict";
const cluster = require("node:cluster");
const http = require("node:http");

const [host, port] = (process.argv[2] || "127.0.0.1:0").split(":");
const workers = Number(process.argv[3] || 2);
const body = JSON.stringify({ hello: "world" });

if (cluster.isPrimary) {
  let announced = false;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on("message", (m) => {
      if (!announced && m && m.listening) {
        announced = true;
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
  // Port 0 in every worker gets the one port the primary chose.
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
  server.listen(Number(port), host, () => process.send({ listening: server.address().port }));
}
