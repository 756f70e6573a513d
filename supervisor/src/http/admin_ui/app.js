// fazt's admin console: one ES module, no dependencies. It is served on
// admin.<domain> only, an origin no app shares, so the admin token can be
// kept in sessionStorage (gone with the tab); it goes out only as a bearer
// header to this origin's /api/ and is never put in a URL. Every value the
// API returns is put in the page as text, never as markup.

const TOKEN = "fazt-admin-token";
const tokens = sessionStorage;
const POLL_MS = 2000;
const HISTORY = 150; // points on the overview chart: 5 minutes

// ---- DOM -----------------------------------------------------------------

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

function svg(tag, attrs = {}) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const $ = (sel) => document.querySelector(sel);

function table(headers, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
}

function bytes(n) {
  if (n == null) return "-";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function duration(ms) {
  if (ms == null) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function when(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

// ---- API -----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body, { raw = false, progress } = {}) {
  const token = tokens.getItem(TOKEN) || "";
  if (progress) return upload(method, path, body, token, progress);
  const headers = { authorization: `Bearer ${token}` };
  let payload;
  if (body !== undefined) {
    if (raw) payload = body;
    else {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
  }
  const r = await fetch(path, { method, headers, body: payload, cache: "no-store", credentials: "omit" });
  return answer(r.status, await r.text());
}

// XMLHttpRequest, for upload progress.
function upload(method, path, body, token, progress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, path);
    x.setRequestHeader("authorization", `Bearer ${token}`);
    x.upload.onprogress = (e) => { if (e.lengthComputable) progress(e.loaded / e.total); };
    x.onload = () => { try { resolve(answer(x.status, x.responseText)); } catch (e) { reject(e); } };
    x.onerror = () => reject(new ApiError(0, "NETWORK", "the upload failed: fazt did not answer"));
    x.onabort = () => reject(new ApiError(0, "ABORTED", "the upload was stopped"));
    x.timeout = 10 * 60 * 1000;
    x.ontimeout = () => reject(new ApiError(0, "TIMEOUT", "the upload took longer than 10 minutes"));
    x.send(body);
  });
}

function answer(status, text) {
  let j = null;
  try { j = JSON.parse(text); } catch { j = null; }
  if (status === 401) {
    logout("Your session is no longer valid: log in again.");
    throw new ApiError(401, "UNAUTHORIZED", "unauthorized");
  }
  if (status < 200 || status > 299) {
    throw new ApiError(status, j?.error?.code ?? String(status), j?.error?.message ?? `HTTP ${status}`);
  }
  return j;
}

// Runs an action, showing its error (in plain words) in `where`.
async function attempt(where, action, done) {
  where.textContent = "";
  where.className = "error";
  try {
    await action();
    if (done) { where.className = "ok"; where.textContent = done; }
  } catch (e) {
    where.className = "error";
    where.textContent = e.message || String(e);
  }
}

// ---- Login ---------------------------------------------------------------

function showLogin(message) {
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").value = "";
  $("#token").focus();
}

function logout(message) {
  tokens.removeItem(TOKEN);
  stopTimers();
  showLogin(message);
}

async function login(e) {
  e.preventDefault();
  const token = $("#token").value.trim();
  tokens.setItem(TOKEN, token);
  try {
    await api("GET", "/api/system/health");
    $("#token").value = "";
    start();
  } catch (err) {
    tokens.removeItem(TOKEN);
    showLogin(err.status === 401 ? "unauthorized: that is not the admin token" : err.message);
  }
}

// ---- Pages ---------------------------------------------------------------

let timers = [];
function every(ms, f) { f(); timers.push(setInterval(f, ms)); }
function stopTimers() { timers.forEach(clearInterval); timers = []; }

const pages = { overview, apps, limits, network, secrets };

function route() {
  stopTimers();
  const name = (location.hash || "#overview").slice(1);
  const page = Object.hasOwn(pages, name) ? name : "overview";
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  const root = $("#page");
  root.replaceChildren();
  pages[page](root);
}

function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  route();
}

// Overview: health, workers and egress, requests per second and p99.
function overview(root) {
  const facts = h("div", { class: "facts" });
  const children = h("div");
  const err = h("p", { class: "error", role: "alert" });
  const chart = svg("svg", { class: "chart", viewBox: "0 0 300 100", preserveAspectRatio: "none", role: "img", "aria-label": "requests per second and p99" });
  const legend = h("p", { class: "muted" });
  root.append(
    h("h1", {}, "Overview"),
    err,
    h("section", {}, facts),
    h("section", {}, h("h2", {}, "Load"), chart, legend),
    h("section", {}, h("h2", {}, "Workers and egress"), children));
  const history = [];
  every(POLL_MS, () => attempt(err, async () => {
    const [health, workers] = await Promise.all([api("GET", "/api/system/health"), api("GET", "/api/workers")]);
    const d = health.data;
    facts.replaceChildren(
      h("div", {}, h("span", {}, "Health"), h("strong", { id: "health", class: `status-${d.status}` }, d.status)),
      h("div", {}, h("span", {}, "Phase"), d.phase),
      h("div", {}, h("span", {}, "Uptime"), duration(d.uptime_ms)),
      h("div", {}, h("span", {}, "Workers ready"), `${d.workers.ready} / ${d.workers.total}`),
      h("div", {}, h("span", {}, "Version"), d.version),
      ...(d.problems.length ? [h("div", {}, h("span", {}, "Problems"), d.problems.join("; "))] : []));
    const rows = workers.data;
    children.replaceChildren(table(
      ["kind", "slot", "pid", "state", "uptime", "restarts", "last exit", "cpu", "rss", "lanes", "served", "p99"],
      rows.map((w) => [w.kind, w.slot, w.pid ?? "-", w.state, duration(w.uptime_ms), w.restarts, w.last_exit ?? "-",
        w.cpu_percent == null ? "-" : `${w.cpu_percent.toFixed(0)}%`, bytes(w.rss_bytes),
        `${w.lanes_busy}/${w.lanes_total}`, w.served, w.p99_us ? `${(w.p99_us / 1000).toFixed(1)} ms` : "-"])));
    children.querySelector("tbody")?.setAttribute("id", "children");
    const served = rows.filter((w) => w.kind === "worker").reduce((n, w) => n + w.served, 0);
    const p99 = Math.max(0, ...rows.filter((w) => w.kind === "worker").map((w) => w.p99_us / 1000));
    history.push({ t: Date.now(), served, p99 });
    if (history.length > HISTORY) history.shift();
    drawChart(chart, legend, history);
  }));
}

function drawChart(chart, legend, history) {
  const rps = [];
  for (let i = 1; i < history.length; i++) {
    const dt = (history[i].t - history[i - 1].t) / 1000;
    rps.push(Math.max(0, (history[i].served - history[i - 1].served) / dt));
  }
  const p99 = history.slice(1).map((x) => x.p99);
  const line = (values, cls) => {
    const max = Math.max(1, ...values);
    const points = values.map((v, i) => `${(i / Math.max(1, values.length - 1)) * 300},${100 - (v / max) * 95}`).join(" ");
    return svg("polyline", { class: cls, points });
  };
  chart.replaceChildren(svg("line", { class: "axis", x1: 0, y1: 99, x2: 300, y2: 99 }), line(rps, "rps"), line(p99, "p99"));
  const last = (a) => (a.length ? a[a.length - 1] : 0);
  legend.replaceChildren(
    h("span", { class: "legend-rps" }, `requests/s ${last(rps).toFixed(0)}`), "  ",
    h("span", { class: "legend-p99" }, `p99 ${last(p99).toFixed(1)} ms`), "  (last 5 minutes; each line to its own scale)");
}

// A zip of `files` (each {path, bytes}), stored without compression: how a
// folder chosen in the browser becomes one upload. The server applies its
// deploy rules to it as to any zip.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function zip(files) {
  const enc = new TextEncoder();
  const parts = [];
  const central = [];
  let offset = 0;
  const header = (size) => { const b = new DataView(new ArrayBuffer(size)); return b; };
  for (const f of files) {
    const name = enc.encode(f.path);
    const crc = crc32(f.bytes);
    const local = header(30);
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true); // UTF-8 names
    local.setUint16(8, 0, true); // stored
    local.setUint32(14, crc, true);
    local.setUint32(18, f.bytes.length, true);
    local.setUint32(22, f.bytes.length, true);
    local.setUint16(26, name.length, true);
    parts.push(local.buffer, name, f.bytes);
    const c = header(46);
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 20, true);
    c.setUint16(6, 20, true);
    c.setUint16(8, 0x0800, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, f.bytes.length, true);
    c.setUint32(24, f.bytes.length, true);
    c.setUint16(28, name.length, true);
    c.setUint32(42, offset, true);
    central.push(c.buffer, name);
    offset += 30 + name.length + f.bytes.length;
  }
  const size = central.reduce((n, p) => n + p.byteLength, 0);
  const end = header(22);
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end.buffer], { type: "application/zip" });
}

// The files of a folder input, paths without the folder's own name.
async function folderZip(list) {
  const files = [];
  for (const f of list) {
    const path = f.webkitRelativePath.split("/").slice(1).join("/");
    if (path) files.push({ path, bytes: new Uint8Array(await f.arrayBuffer()) });
  }
  return zip(files);
}

// Apps: list, deploy a zip or a folder with progress, remove.
function apps(root) {
  const list = h("div");
  const err = h("p", { class: "error", role: "alert" });
  const name = h("input", { id: "deploy-name", required: true, placeholder: "app name" });
  const file = h("input", { id: "deploy-file", type: "file", accept: ".zip,application/zip" });
  const folder = h("input", { id: "deploy-folder", type: "file", webkitdirectory: true });
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const said = h("p", { class: "error", role: "status" });
  const refresh = () => attempt(err, async () => {
    const r = await api("GET", "/api/apps");
    list.replaceChildren(r.data.length === 0 ? h("p", { class: "muted" }, "No apps yet.") : table(
      ["name", "version", "files", "size", "server code", "kv keys", "kv size", "quarantine", ""],
      r.data.map((a) => [a.name, a.version, a.files, bytes(a.bytes), a.has_api ? "yes" : "no", a.kv_keys, bytes(a.kv_bytes),
        a.quarantine_left_ms ? `paused ${duration(a.quarantine_left_ms)}` : "-",
        h("button", { type: "button", class: "danger", onclick: () => remove(a.name) }, "Remove")])));
  });
  const remove = (app) => {
    if (!confirm(`Remove app ${app} with its files and kv data? This cannot be undone.`)) return;
    attempt(err, async () => { await api("DELETE", `/api/apps/${encodeURIComponent(app)}`); await refresh(); });
  };
  const deploy = (e) => {
    e.preventDefault();
    const app = name.value.trim();
    const refuse = (why) => { said.className = "error"; said.textContent = why; };
    if (!app) return refuse("give the app a name");
    const zipped = file.files[0];
    const files = folder.files.length;
    if (!zipped && !files) return refuse("choose a zip or a folder");
    if (zipped && files) return refuse("choose a zip or a folder, not both");
    bar.hidden = false;
    bar.value = 0;
    attempt(said, async () => {
      const body = zipped ?? await folderZip(folder.files);
      await api("POST", `/api/apps/${encodeURIComponent(app)}`, body, { progress: (p) => { bar.value = p; } });
      await refresh();
    }, `deployed ${app}`).finally(() => { bar.hidden = true; });
  };
  root.append(
    h("h1", {}, "Apps"), err,
    h("section", {}, list),
    h("section", {}, h("h2", {}, "Deploy"),
      h("form", { class: "row", id: "deploy", onsubmit: deploy },
        h("div", {}, h("label", { for: "deploy-name" }, "Name"), name),
        h("div", {}, h("label", { for: "deploy-file" }, "A zip"), file),
        h("div", {}, h("label", { for: "deploy-folder" }, "or a folder"), folder),
        h("button", { type: "submit" }, "Deploy"), bar),
      said));
  refresh();
}

// Limits: one form per group, generated from the schema.
const BYTE_UNITS = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };
const MS_UNITS = { ms: 1, s: 1000, m: 60000 };

// The value as the server will read it, or null when it cannot be read
// here (the server then says why).
function parseValue(raw, unit) {
  const m = raw.trim().match(/^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/);
  if (!m) return null;
  const n = Number(m[1]);
  const suffix = m[2].toLowerCase();
  if (!suffix) return n;
  const table = unit === "bytes" ? BYTE_UNITS : unit === "ms" ? MS_UNITS : {};
  return suffix in table ? Math.round(n * table[suffix]) : null;
}

function shown(v, unit) {
  if (unit === "bytes") return bytes(v);
  if (unit === "ms") return `${v} ms`;
  return unit ? `${v} ${unit}` : String(v);
}

function limits(root) {
  const err = h("p", { class: "error", role: "alert" });
  root.append(h("h1", {}, "Limits"),
    h("p", { class: "muted" }, "Changes are stored at once and apply at the next start of fazt."), err);
  attempt(err, async () => {
    const [schema, next] = await Promise.all([api("GET", "/api/system/limits/schema"), api("GET", "/api/system/limits/next")]);
    const rows = Object.fromEntries(next.data.map((r) => [r.path, r]));
    for (const [group, leaves] of Object.entries(schema.data)) {
      const section = h("section", { id: `group-${group}` }, h("h2", {}, group));
      for (const [field, leaf] of Object.entries(leaves)) {
        section.append(limitField(`${group}.${field}`, leaf, rows[`${group}.${field}`]));
      }
      root.append(section);
    }
  });
}

function limitField(path, leaf, row) {
  const id = `limit-${path.replace(".", "-")}`;
  const input = h("input", { id, name: path, value: row ? String(row.value) : "", disabled: leaf.read_only, inputmode: "text", "aria-describedby": `${id}-desc` });
  const source = h("span", { class: "muted", id: `${id}-source` });
  const msg = h("p", { class: "error field-error", id: `${id}-error`, role: "alert" });
  const range = leaf.read_only ? "read-only (probed)" : `${shown(leaf.min, leaf.unit)} – ${shown(leaf.max, leaf.unit)}`;
  const setSource = (r) => { source.textContent = r ? `${shown(r.value, leaf.unit)} · ${r.source}` : ""; };
  setSource(row);
  const reload = async () => {
    const next = await api("GET", "/api/system/limits/next");
    const r = next.data.find((x) => x.path === path);
    setSource(r);
    if (r) input.value = String(r.value);
  };
  // Checked here as it is typed; the server checks again on save and its
  // message is the one shown for a refusal.
  const hint = h("span", { class: "error", id: `${id}-hint` });
  input.addEventListener("input", () => {
    const value = parseValue(input.value, leaf.unit);
    const outside = value != null && (value < leaf.min || value > leaf.max);
    input.setAttribute("aria-invalid", outside ? "true" : "false");
    hint.textContent = outside ? `outside ${range}` : "";
  });
  // A failed refresh after a stored change says so, not that it failed.
  const refreshed = async (done) => {
    try {
      await reload();
      return done;
    } catch (e) {
      return `${done} (the list could not be refreshed: ${e.message})`;
    }
  };
  const save = async () => {
    const value = parseValue(input.value, leaf.unit);
    let done = null;
    await attempt(msg, async () => {
      await api("PUT", `/api/system/limits/${path.replace(".", "/")}`, { value: value ?? input.value.trim() });
      done = await refreshed("saved; applies at the next start");
    });
    if (done) { msg.className = "ok"; msg.textContent = done; }
  };
  const reset = async () => {
    let done = null;
    await attempt(msg, async () => {
      await api("DELETE", `/api/system/limits/${path.replace(".", "/")}`);
      done = await refreshed("reset to the default; applies at the next start");
    });
    if (done) { msg.className = "ok"; msg.textContent = done; }
  };
  return h("div", { class: "limit", id: `${id}-row` },
    h("label", { for: id }, leaf.label, " ", h("span", { class: "muted" }, `(${path})`)),
    input,
    h("div", { class: "actions" },
      h("button", { type: "button", id: `${id}-save`, disabled: leaf.read_only, onclick: save }, "Save"),
      h("button", { type: "button", class: "secondary", id: `${id}-reset`, disabled: leaf.read_only, onclick: reset }, "Reset"),
      source, hint),
    h("div", { class: "desc", id: `${id}-desc` }, leaf.desc, " ", h("span", {}, `Range: ${range}.`)),
    msg);
}

// Network: allowlist, logs, stats, cache.
function network(root) {
  const err = h("p", { class: "error", role: "alert" });
  const allow = h("div");
  const logs = h("div");
  const stats = h("div");
  const cache = h("div");
  const field = (id, label, attrs = {}) => h("div", {}, h("label", { for: id }, label), h("input", { id, ...attrs }));
  const addMsg = h("p", { class: "error", role: "status" });
  const refreshAllow = () => attempt(err, async () => {
    const r = await api("GET", "/api/net/allowlist");
    allow.replaceChildren(r.data.length === 0 ? h("p", { class: "muted" }, "Nothing is allowed: apps can fetch nothing.") : table(
      ["domain", "app", "http", "rate/min", "burst", "timeout", "max response", "cache ttl", ""],
      r.data.map((e) => [e.domain, e.app ?? "(all)", e.http ? "http+https" : "https", e.rate ?? "-", e.burst ?? "-",
        e.timeout_ms ? `${e.timeout_ms} ms` : "-", e.max_response ? bytes(e.max_response) : "-", e.cache_ttl_s ? `${e.cache_ttl_s} s` : "-",
        h("button", { type: "button", class: "danger", onclick: () => removeEntry(e) }, "Remove")])));
  });
  const removeEntry = (e) => {
    if (!confirm(`Stop allowing ${e.domain}${e.app ? ` for ${e.app}` : ""}?`)) return;
    const q = new URLSearchParams({ domain: e.domain });
    if (e.app) q.set("app", e.app);
    attempt(err, async () => { await api("DELETE", `/api/net/allowlist?${q}`); await refreshAllow(); });
  };
  const add = (ev) => {
    ev.preventDefault();
    const body = { domain: $("#allow-domain").value.trim(), http: $("#allow-http").checked };
    const app = $("#allow-app").value.trim();
    if (app) body.app = app;
    for (const [id, key] of [["allow-rate", "rate"], ["allow-burst", "burst"], ["allow-timeout", "timeout_ms"], ["allow-max", "max_response"], ["allow-ttl", "cache_ttl_s"]]) {
      const v = $(`#${id}`).value.trim();
      if (v) body[key] = v;
    }
    attempt(addMsg, async () => { await api("POST", "/api/net/allowlist", body); await refreshAllow(); }, `allowed ${body.domain}`);
  };
  const refreshLogs = () => attempt(err, async () => {
    const q = new URLSearchParams({ limit: "100" });
    const app = $("#logs-app").value.trim();
    const domain = $("#logs-domain").value.trim();
    if (app) q.set("app", app);
    if (domain) q.set("domain", domain);
    if ($("#logs-errors").checked) q.set("errors", "true");
    const r = await api("GET", `/api/net/logs?${q}`);
    logs.replaceChildren(r.data.length === 0 ? h("p", { class: "muted" }, "No fetches logged.") : table(
      ["when (UTC)", "app", "domain", "method", "path", "result", "ms", "bytes in"],
      r.data.map((l) => [when(l.created_at), l.app ?? `#${l.app_id}`, l.domain, l.method, l.path,
        l.error_code ?? `${l.status}${l.cache_hit ? " cached" : ""}`, l.duration_ms, bytes(l.response_bytes)])));
  });
  const refreshStats = () => attempt(err, async () => {
    const r = await api("GET", "/api/net/stats");
    const max = Math.max(1, ...r.data.map((s) => s.calls));
    stats.replaceChildren(r.data.length === 0 ? h("p", { class: "muted" }, "No fetches logged.") : table(
      ["domain", "calls", "", "errors", "p50", "p99", "out", "in", "cache hits", "dropped"],
      r.data.map((s) => {
        const bar = h("div", { class: "bar" });
        bar.style.width = `${Math.round((s.calls / max) * 100)}px`;
        const errors = Object.entries(s.errors).map(([c, n]) => `${c} ${n}`).join(", ") || "-";
        const dropped = s.dropped.dropped + s.dropped.errors_dropped + s.dropped.lost;
        return [s.domain, s.calls, bar, errors, `${s.p50_ms} ms`, `${s.p99_ms} ms`, bytes(s.bytes_out), bytes(s.bytes_in), s.cache_hits, dropped];
      })));
  });
  const refreshCache = () => attempt(err, async () => {
    const r = await api("GET", "/api/net/cache");
    const c = r.data;
    cache.replaceChildren(h("p", {}, `${c.items} entries, ${bytes(c.bytes)}; hit ratio ${(c.hit_ratio * 100).toFixed(0)}% of ${c.hits + c.misses} lookups `,
      h("button", { type: "button", class: "danger", onclick: clearCache }, "Clear")));
  });
  const clearCache = () => {
    if (!confirm("Empty the response cache of every app?")) return;
    attempt(err, async () => { await api("DELETE", "/api/net/cache"); await refreshCache(); });
  };
  root.append(
    h("h1", {}, "Network"), err,
    h("section", {}, h("h2", {}, "Allowlist"), allow,
      h("form", { class: "row", id: "allow-form", onsubmit: add },
        field("allow-domain", "Domain", { required: true, placeholder: "api.example.com or *.example.com" }),
        field("allow-app", "App (empty: every app)"),
        h("div", {}, h("label", { for: "allow-http" }, "http too"), h("input", { id: "allow-http", type: "checkbox" })),
        field("allow-rate", "Rate/min", { size: 6 }), field("allow-burst", "Burst", { size: 5 }),
        field("allow-timeout", "Timeout ms", { size: 7 }), field("allow-max", "Max response", { size: 8, placeholder: "1MiB" }),
        field("allow-ttl", "Cache TTL s", { size: 6 }),
        h("button", { type: "submit" }, "Allow")),
      addMsg),
    h("section", {}, h("h2", {}, "Stats per domain"), stats),
    h("section", {}, h("h2", {}, "Response cache"), cache),
    h("section", {}, h("h2", {}, "Log"),
      h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); refreshLogs(); } },
        field("logs-app", "App"), field("logs-domain", "Domain"),
        h("div", {}, h("label", { for: "logs-errors" }, "Errors only"), h("input", { id: "logs-errors", type: "checkbox" })),
        h("button", { type: "submit", class: "secondary" }, "Filter")),
      logs));
  refreshAllow();
  refreshStats();
  refreshCache();
  refreshLogs();
}

// Secrets: names, kinds, domains and masked values; set and remove. A
// value typed here is sent once and never shown again, here or anywhere.
function secrets(root) {
  const err = h("p", { class: "error", role: "alert" });
  const list = h("div");
  const msg = h("p", { class: "error", role: "status" });
  const refresh = () => attempt(err, async () => {
    const r = await api("GET", "/api/secrets");
    list.replaceChildren(r.data.length === 0 ? h("p", { class: "muted" }, "No secrets.") : table(
      ["name", "app", "sent as", "key", "domain", "value", ""],
      r.data.map((s) => [s.name, s.app ?? "(all)", s.as.kind, s.as.key ?? "-", s.domain, s.value,
        h("button", { type: "button", class: "danger", onclick: () => remove(s) }, "Remove")])));
  });
  const remove = (s) => {
    if (!confirm(`Remove secret ${s.name}${s.app ? ` of ${s.app}` : ""}? Apps using it get NET_AUTH.`)) return;
    const q = new URLSearchParams({ name: s.name });
    if (s.app) q.set("app", s.app);
    attempt(err, async () => { await api("DELETE", `/api/secrets?${q}`); await refresh(); });
  };
  const value = h("input", { id: "secret-value", type: "password", required: true, autocomplete: "new-password" });
  const set = (e) => {
    e.preventDefault();
    const body = { name: $("#secret-name").value.trim(), value: value.value, domain: $("#secret-domain").value.trim(), as: $("#secret-as").value };
    const key = $("#secret-key").value.trim();
    const app = $("#secret-app").value.trim();
    if (key) body.key = key;
    if (app) body.app = app;
    attempt(msg, async () => {
      await api("POST", "/api/secrets", body);
      value.value = "";
      await refresh();
    }, `set ${body.name}`);
  };
  const field = (id, label, attrs = {}) => h("div", {}, h("label", { for: id }, label), h("input", { id, ...attrs }));
  root.append(
    h("h1", {}, "Secrets"), err,
    h("section", {}, list),
    h("section", {}, h("h2", {}, "Set a secret"),
      h("form", { class: "row", id: "secret-form", onsubmit: set, autocomplete: "off" },
        field("secret-name", "Name", { required: true, placeholder: "STRIPE_KEY" }),
        h("div", {}, h("label", { for: "secret-value" }, "Value"), value),
        h("div", {}, h("label", { for: "secret-as" }, "Sent as"),
          h("select", { id: "secret-as" }, h("option", { value: "bearer" }, "bearer"), h("option", { value: "header" }, "header"), h("option", { value: "query" }, "query"))),
        field("secret-key", "Header or query key"),
        field("secret-domain", "Domain", { required: true, placeholder: "api.example.com" }),
        field("secret-app", "App (empty: every app)"),
        h("button", { type: "submit" }, "Set")),
      msg));
  refresh();
}

// ---- Start ---------------------------------------------------------------

$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", () => logout("Logged out."));
window.addEventListener("hashchange", () => { if (!$("#app").hidden) route(); });
if (tokens.getItem(TOKEN)) {
  api("GET", "/api/system/health").then(start, (e) => { if (e.status !== 401) showLogin(e.message); });
} else {
  showLogin();
}
