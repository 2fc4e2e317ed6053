// meshnet dashboard: live snapshots over server-sent events (fetch + a stream reader, so
// the API key travels in the Authorization header), a ring drawn in SVG, and a chat box
// whose turns become Jobs.
"use strict";

const KEY = "meshnetKey";
const state = { snapshot: null, chat: [], pending: null, pool: null };
const $ = (id) => document.getElementById(id);

function headers(extra) {
  const key = sessionStorage.getItem(KEY);
  return Object.assign(key ? { Authorization: "Bearer " + key } : {}, extra || {});
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const COLORS = ["#1a5fb4", "#26a269", "#c64600", "#9141ac", "#e5a50a", "#63452c"];

function ringDrawing(ring) {
  const size = 280, c = size / 2, r = 82;
  const drawing = svg("svg", { width: size, height: size, viewBox: `0 0 ${size} ${size}`, id: "ring-svg" });
  const members = (ring && ring.members) || [];
  const total = (ring && ring.shardColumns) || 1;
  drawing.append(svg("circle", { cx: c, cy: c, r, fill: "none", stroke: "#e4e6eb", "stroke-width": 18 }));
  members.forEach((m, i) => {
    const a0 = (m.shard.start / total) * 2 * Math.PI - Math.PI / 2;
    const a1 = (m.shard.end / total) * 2 * Math.PI - Math.PI / 2 - 0.02;
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const p = (a) => `${c + r * Math.cos(a)} ${c + r * Math.sin(a)}`;
    drawing.append(svg("path", {
      d: `M ${p(a0)} A ${r} ${r} 0 ${large} 1 ${p(a1)}`, fill: "none",
      stroke: COLORS[i % COLORS.length], "stroke-width": 18, class: "ring-member",
      "data-node": m.nodeId,
    }));
    const mid = (a0 + a1) / 2, lr = r + 30;
    drawing.append(svg("text", {
      x: c + lr * Math.cos(mid), y: c + lr * Math.sin(mid) + 4, "text-anchor": "middle",
      "font-size": 11, class: "ring-label",
    }, m.name || m.nodeId.slice(0, 10)));
  });
  drawing.append(svg("text", { x: c, y: c + 4, "text-anchor": "middle", "font-size": 12 },
    ring ? `epoch ${ring.epoch}${ring.converged ? "" : " …"}` : "no ring"));
  return drawing;
}

function legend(ring) {
  const list = el("table", { class: "legend" },
    el("tr", {}, el("th", {}, ""), el("th", {}, "member"), el("th", {}, "columns")));
  ((ring && ring.members) || []).forEach((m, i) => {
    list.append(el("tr", {},
      el("td", { style: `color:${COLORS[i % COLORS.length]}` }, "■"),
      el("td", {}, m.name || m.nodeId),
      el("td", {}, `${m.shard.start}–${m.shard.end}`)));
  });
  return list;
}

function mib(bytes) { return bytes ? `${Math.round(bytes / 2 ** 20)} MiB` : "–"; }
function ms(value) { return value == null ? "–" : `${Math.round(value)} ms`; }

function membersTable(members) {
  const table = el("table", { class: "members" }, el("tr", {},
    ...["name", "state", "address", "last seen", "memory", "compute/token", "columns"].map((h) => el("th", {}, h))));
  for (const m of members) {
    table.append(el("tr", { "data-node": m.nodeId },
      el("td", { title: m.nodeId }, (m.name || m.nodeId) + (m.self ? " (this device)" : "")),
      el("td", { class: m.status || "" }, m.status || "?"),
      el("td", {}, m.address || "–"),
      el("td", {}, m.self ? "now" : (m.lastSeen || "–")),
      el("td", {}, mib(m.memoryBytes)),
      el("td", {}, m.computeMsPerToken == null ? "–" : `${m.computeMsPerToken} ms`),
      el("td", {}, m.shard ? `${m.shard.start}–${m.shard.end}` : "–")));
  }
  return table;
}

function memberName(nodeId) {
  for (const pool of (state.snapshot && state.snapshot.pools) || []) {
    const found = pool.members.find((m) => m.nodeId === nodeId);
    if (found && found.name) return found.name;
  }
  return nodeId;
}

function jobView(job) {
  const figures = el("table", { class: "job-members" }, el("tr", {},
    ...["member", "columns", "compute", "communication"].map((h) => el("th", {}, h))));
  for (const m of job.members) {
    figures.append(el("tr", {}, el("td", { title: m.nodeId }, memberName(m.nodeId)), el("td", {}, (m.columns || []).join("–")),
      el("td", {}, ms(m.computeMs)), el("td", {}, ms(m.commMs))));
  }
  const speed = job.tokensPerSecond == null ? "" : ` · ${job.tokensPerSecond.toFixed(1)} tok/s`;
  const ttft = job.timeToFirstTokenMs == null ? "" : ` · first token ${ms(job.timeToFirstTokenMs)}`;
  return el("div", { class: "job", "data-job": job.name },
    el("div", {}, el("b", {}, job.name), " ", el("span", { class: job.phase }, job.phase),
      ` · ${job.tokens} tokens${speed}${ttft}`),
    el("div", { class: "hint" }, job.prompt || ""),
    el("pre", { class: "job-output" }, job.output),
    job.members.length ? figures : "");
}

function render(snapshot) {
  state.snapshot = snapshot;
  const root = $("pools");
  root.replaceChildren();
  for (const pool of snapshot.pools) {
    state.pool = state.pool || pool.name;
    const running = pool.jobs.filter((j) => j.phase !== "Succeeded" && j.phase !== "Failed");
    const recent = pool.jobs.filter((j) => !running.includes(j));
    root.append(el("section", { class: "pool", "data-pool": pool.name },
      el("h2", {}, `Pool ${pool.name} `, el("small", { class: "hint" }, pool.poolId)),
      el("div", { class: "ring" }, ringDrawing(pool.ring), legend(pool.ring)),
      membersTable(pool.members),
      el("h2", {}, "Running jobs"), ...(running.length ? running.map(jobView) : [el("p", { class: "hint" }, "none")]),
      el("h2", {}, "Recent jobs"), ...recent.map(jobView)));
  }
  renderChat();
}

function pendingJob() {
  if (!state.pending || !state.snapshot) return null;
  for (const pool of state.snapshot.pools) {
    const job = pool.jobs.find((j) => j.name === state.pending);
    if (job) return job;
  }
  return null;
}

function renderChat() {
  const log = $("chat-log");
  log.replaceChildren(...state.chat.map((m) => el("div", { class: `msg ${m.role}` }, `${m.role === "user" ? "you" : "pool"}: ${m.content}`)));
  const job = pendingJob();
  if (job) {
    log.append(el("div", { class: "msg assistant streaming", "data-job": job.name }, `pool: ${job.output}`));
    if (job.phase === "Succeeded" || job.phase === "Failed") {
      state.chat.push({ role: "assistant", content: job.phase === "Failed" ? "(failed)" : job.output });
      state.pending = null;
      $("send").disabled = false;
      renderChat();
    }
  }
  log.scrollTop = log.scrollHeight;
}

async function sendChat(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || state.pending) return;
  state.chat.push({ role: "user", content: text });
  $("prompt").value = "";
  $("send").disabled = true;
  const reply = await fetch("/v1/dashboard/chat", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({
      messages: state.chat.filter((m) => m.content), pool: state.pool,
      maxTokens: Number($("max-tokens").value) || 128,
    }),
  });
  const body = await reply.json();
  if (!reply.ok) {
    state.chat.push({ role: "assistant", content: `error: ${body.error || reply.status}` });
    $("send").disabled = false;
  } else {
    state.pending = body.job;
  }
  renderChat();
}

async function follow() {
  for (;;) {
    try {
      const reply = await fetch("/v1/dashboard/stream", { headers: headers() });
      if (reply.status === 401 || reply.status === 403) return showLogin("the key was refused");
      const reader = reply.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      $("live").classList.add("on");
      $("status").textContent = "live";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (block.startsWith("event: snapshot") && data) render(JSON.parse(data));
        }
      }
    } catch (err) {
      $("status").textContent = `reconnecting (${err})`;
    }
    $("live").classList.remove("on");
    await new Promise((done) => setTimeout(done, 1000));
  }
}

function showLogin(reason) {
  $("main").hidden = true;
  $("login").hidden = false;
  $("status").textContent = reason;
}

async function start() {
  const probe = await fetch("/v1/dashboard/state", { headers: headers() });
  if (probe.status === 401 || probe.status === 403) return showLogin("sign in");
  $("login").hidden = true;
  $("main").hidden = false;
  render(await probe.json());
  follow();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  start();
});
$("chat-form").addEventListener("submit", sendChat);
start();
