// The pyk8s dashboard's script (see pyk8s/apiserver/dashboard/__init__.py): one list and
// then one watch per resource, read as a stream; every request goes through
// /dashboard/api as the signed-in user, so RBAC decides what appears.
"use strict";

const BASE = "/dashboard";
const API = BASE + "/api";
const RESOURCES = [
  // name, path (namespaced?), cluster-scoped only with nodes permission
  { name: "deployments", group: "/apis/apps/v1", plural: "deployments" },
  { name: "statefulsets", group: "/apis/apps/v1", plural: "statefulsets" },
  { name: "daemonsets", group: "/apis/apps/v1", plural: "daemonsets" },
  { name: "pods", group: "/api/v1", plural: "pods" },
  { name: "services", group: "/api/v1", plural: "services" },
  { name: "endpointslices", group: "/apis/discovery.k8s.io/v1", plural: "endpointslices" },
  { name: "events", group: "/api/v1", plural: "events" },
  { name: "nodes", group: "/api/v1", plural: "nodes", cluster: true },
];

const stores = {};
let me = null;
let session = null; // AbortController of the current namespace's watches
let selected = null; // {ns, name} of the pod whose detail is open
let logAbort = null;
let renderQueued = false;
// what changed since the last render: resource name -> changed keys, or "all" (added,
// deleted, relisted): a pod that only changed re-renders its own row, not the table
const dirty = {};
let connected = 0;

function key(o) {
  const m = o.metadata || {};
  return (m.namespace ? m.namespace + "/" : "") + m.name;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, attrs) {
  const tr = el("tr");
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c);
    else td.textContent = c === undefined || c === null ? "" : String(c);
    tr.appendChild(td);
  }
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  return tr;
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
}

function age(ts) {
  if (!ts) return "";
  const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  if (s < 120) return Math.floor(s) + "s";
  if (s < 7200) return Math.floor(s / 60) + "m";
  if (s < 172800) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

// ------------------------------------------------------------------ quantities

function quantity(q) {
  if (q === undefined || q === null) return 0;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(q));
  if (!m) return 0;
  const n = parseFloat(m[1]);
  const units = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1048576,
    Gi: 1073741824, Ti: 1099511627776 };
  return n * (units[m[2]] || 1);
}

function mib(bytes) {
  return Math.round(bytes / 1048576) + "Mi";
}

// ------------------------------------------------------------------ pod status

function podStatus(p) {
  const st = p.status || {};
  if (p.metadata.deletionTimestamp) return { text: "Terminating", bad: false };
  for (const key of ["initContainerStatuses", "containerStatuses"]) {
    for (const cs of st[key] || []) {
      const w = (cs.state || {}).waiting;
      if (w && w.reason && w.reason !== "PodInitializing" && w.reason !== "ContainerCreating") {
        return { text: w.reason, bad: true, why: w.message || "" };
      }
      const t = (cs.state || {}).terminated;
      if (t && key === "containerStatuses" && t.exitCode !== 0 && st.phase !== "Succeeded") {
        return { text: t.reason || "Error", bad: true, why: "exit code " + t.exitCode };
      }
    }
  }
  for (const c of st.conditions || []) {
    if (c.type === "PodScheduled" && c.status === "False") {
      return { text: "Pending (" + (c.reason || "Unschedulable") + ")", bad: true,
        why: c.message || "" };
    }
  }
  if (st.phase === "Failed") return { text: st.reason || "Failed", bad: true, why: st.message || "" };
  return { text: st.phase || "Pending", bad: false };
}

function readyCount(p) {
  const cs = (p.status || {}).containerStatuses || [];
  const total = (p.spec.containers || []).length;
  return cs.filter((c) => c.ready).length + "/" + total;
}

function restarts(p) {
  return ((p.status || {}).containerStatuses || []).reduce((n, c) => n + (c.restartCount || 0), 0);
}

// ------------------------------------------------------------------ rendering

function values(name) {
  return Array.from((stores[name] || new Map()).values());
}

function rollout(kind, o) {
  const st = o.status || {};
  if ((st.observedGeneration || 0) < (o.metadata.generation || 0)) return "pending";
  if (kind === "Deployment") {
    const prog = (st.conditions || []).find((c) => c.type === "Progressing");
    if (prog && prog.reason === "ProgressDeadlineExceeded") return "failed";
    const want = o.spec.replicas ?? 1;
    if ((st.updatedReplicas || 0) === want && (st.availableReplicas || 0) === want
        && (st.replicas || 0) === want) return "complete";
    return "progressing";
  }
  if (kind === "StatefulSet") {
    const want = o.spec.replicas ?? 1;
    return st.currentRevision === st.updateRevision && (st.readyReplicas || 0) === want
      ? "complete" : "progressing";
  }
  return (st.numberReady || 0) === (st.desiredNumberScheduled || 0) ? "complete" : "progressing";
}

function renderWorkloads() {
  const rows = [];
  const add = (kind, o, desired, ready, updated, available) => {
    const r = rollout(kind, o);
    rows.push(row([kind, o.metadata.namespace, o.metadata.name, desired, ready, updated,
      available, el("span", r, "rollout " + r)], { "data-key": kind + "/" + key(o) }));
  };
  for (const d of values("deployments")) {
    const s = d.status || {};
    add("Deployment", d, d.spec.replicas ?? 1, s.readyReplicas || 0, s.updatedReplicas || 0,
      s.availableReplicas || 0);
  }
  for (const d of values("statefulsets")) {
    const s = d.status || {};
    add("StatefulSet", d, d.spec.replicas ?? 1, s.readyReplicas || 0, s.updatedReplicas || 0,
      s.availableReplicas || 0);
  }
  for (const d of values("daemonsets")) {
    const s = d.status || {};
    add("DaemonSet", d, s.desiredNumberScheduled || 0, s.numberReady || 0,
      s.updatedNumberScheduled || 0, s.numberAvailable || 0);
  }
  fill("workloads", rows);
}

function podRow(p) {
  const s = podStatus(p);
  const link = el("a", p.metadata.name, "pod-link");
  link.href = "#";
  link.onclick = (ev) => {
    ev.preventDefault();
    openPod(p.metadata.namespace, p.metadata.name);
  };
  return row([p.metadata.namespace, link, el("span", s.text, s.bad ? "bad" : "ok"),
    readyCount(p), restarts(p), p.spec.nodeName || "", age(p.metadata.creationTimestamp)],
  { "data-key": key(p) });
}

function renderPods(changed) {
  if (changed instanceof Set) {
    // only these pods changed: swap their rows in place
    const body = document.querySelector("#pods tbody");
    const rows = new Map(Array.from(body.rows, (r) => [r.getAttribute("data-key"), r]));
    if ([...changed].every((k) => rows.has(k) && stores.pods.has(k))) {
      for (const k of changed) rows.get(k).replaceWith(podRow(stores.pods.get(k)));
      return;
    }
  }
  const pods = values("pods").sort((a, b) => key(a).localeCompare(key(b)));
  fill("pods", pods.map(podRow));
}

function renderNodes() {
  const section = document.getElementById("nodes-section");
  section.hidden = !(me && me.nodes);
  if (section.hidden) return;
  const requested = {};
  for (const p of values("pods")) {
    const node = p.spec.nodeName;
    const phase = (p.status || {}).phase;
    if (!node || phase === "Succeeded" || phase === "Failed") continue;
    const r = (requested[node] = requested[node] || { cpu: 0, memory: 0, pods: 0 });
    r.pods += 1;
    for (const c of p.spec.containers || []) {
      const req = (c.resources || {}).requests || {};
      r.cpu += quantity(req.cpu);
      r.memory += quantity(req.memory);
    }
  }
  fill("nodes", values("nodes").sort((a, b) => key(a).localeCompare(key(b))).map((n) => {
    const st = n.status || {};
    const alloc = st.allocatable || st.capacity || {};
    const req = requested[n.metadata.name] || { cpu: 0, memory: 0, pods: 0 };
    const ready = (st.conditions || []).find((c) => c.type === "Ready");
    const isReady = ready && ready.status === "True";
    const odd = (st.conditions || []).filter((c) =>
      c.type === "Ready" ? c.status !== "True" : c.status === "True");
    return row([n.metadata.name, el("span", isReady ? "Ready" : "NotReady", isReady ? "ok" : "bad"),
      quantity(alloc.cpu).toFixed(2) + " / " + req.cpu.toFixed(2),
      mib(quantity(alloc.memory)) + " / " + mib(req.memory),
      req.pods + " / " + (alloc.pods || "?"),
      odd.map((c) => c.type + "=" + c.status + (c.reason ? " (" + c.reason + ")" : "")).join(", ")
        || "all normal"], { "data-key": n.metadata.name });
  }));
}

function renderServices() {
  const slices = values("endpointslices");
  fill("services", values("services").sort((a, b) => key(a).localeCompare(key(b))).map((s) => {
    const eps = [];
    for (const es of slices) {
      if (es.metadata.namespace !== s.metadata.namespace
          || (es.metadata.labels || {})["kubernetes.io/service-name"] !== s.metadata.name) continue;
      const ports = (es.ports || []).map((p) => p.port);
      for (const e of es.endpoints || []) {
        if ((e.conditions || {}).ready === false) continue;
        for (const a of e.addresses || []) {
          eps.push(ports.length ? ports.map((p) => a + ":" + p).join(",") : a);
        }
      }
    }
    const ports = (s.spec.ports || []).map((p) => p.port + "/" + (p.protocol || "TCP")).join(", ");
    return row([s.metadata.namespace, s.metadata.name, s.spec.type, s.spec.clusterIP, ports,
      eps.join(" ") || "none"], { "data-key": key(s) });
  }));
}

function eventTime(e) {
  return e.lastTimestamp || e.eventTime || e.firstTimestamp || e.metadata.creationTimestamp || "";
}

function renderEvents() {
  const evs = values("events").sort((a, b) =>
    (a.type === "Warning" ? 0 : 1) - (b.type === "Warning" ? 0 : 1)
    || eventTime(b).localeCompare(eventTime(a))).slice(0, 200);
  fill("events", evs.map((e) => {
    const obj = (e.involvedObject || {});
    return row([el("span", e.type, e.type === "Warning" ? "bad" : "ok"), e.metadata.namespace,
      (obj.kind || "") + "/" + (obj.name || ""), e.reason, e.message, e.count || 1]);
  }));
}

function renderFailing() {
  const items = [];
  for (const p of values("pods")) {
    const s = podStatus(p);
    if (s.bad) items.push("Pod " + key(p) + ": " + s.text + (s.why ? " — " + s.why : ""));
  }
  for (const d of values("deployments")) {
    if (rollout("Deployment", d) === "failed") {
      items.push("Deployment " + key(d) + ": rollout failed (progress deadline exceeded)");
    }
  }
  if (me && me.nodes) {
    for (const n of values("nodes")) {
      const ready = ((n.status || {}).conditions || []).find((c) => c.type === "Ready");
      if (!ready || ready.status !== "True") items.push("Node " + n.metadata.name + ": not Ready");
    }
  }
  const list = document.getElementById("failing");
  list.replaceChildren(...(items.length ? items.map((t) => el("li", t, "bad"))
    : [el("li", "nothing is failing", "ok")]));
}

function render() {
  renderQueued = false;
  const changed = Object.assign({}, dirty);
  for (const k of Object.keys(dirty)) delete dirty[k];
  const any = (...names) => names.some((n) => n in changed) || "ages" in changed;
  if (any("deployments", "statefulsets", "daemonsets")) renderWorkloads();
  if (any("pods")) renderPods("ages" in changed ? "all" : changed.pods);
  if (any("pods", "nodes")) renderNodes();
  if (any("services", "endpointslices")) renderServices();
  if (any("events")) renderEvents();
  if (any("pods", "deployments", "nodes")) renderFailing();
}

function markDirty(name, k) {
  if (k === undefined || dirty[name] === "all") dirty[name] = "all";
  else (dirty[name] = dirty[name] || new Set()).add(k);
  queueRender();
}

function queueRender() {
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(render); // one render per frame, none while the tab is hidden
  }
}

// ------------------------------------------------------------------ list + watch

async function getJSON(path, signal) {
  const resp = await fetch(API + path, { signal, credentials: "same-origin" });
  const body = await resp.json();
  if (!resp.ok) throw Object.assign(new Error(body.message || resp.statusText), { code: resp.status });
  return body;
}

function setLive() {
  const badge = document.getElementById("live");
  badge.textContent = connected > 0 ? "live" : "connecting…";
  badge.className = "badge " + (connected > 0 ? "ok" : "");
}

async function listWatch(res, ns, signal) {
  const store = (stores[res.name] = new Map());
  const path = res.group + (ns && !res.cluster ? "/namespaces/" + ns : "") + "/" + res.plural;
  while (!signal.aborted) {
    let rv;
    try {
      const list = await getJSON(path, signal);
      store.clear();
      for (const o of list.items || []) store.set(key(o), o);
      rv = list.metadata.resourceVersion;
      markDirty(res.name);
    } catch (err) {
      if (signal.aborted) return;
      if (err.code === 403 || err.code === 404) return; // not allowed: the section stays empty
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    let counted = false;
    try {
      const resp = await fetch(API + path + "?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv,
        { signal, credentials: "same-origin" });
      if (!resp.ok) throw new Error("watch: " + resp.status);
      connected += 1;
      counted = true;
      setLive();
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line);
          if (ev.type === "ERROR") throw new Error("watch expired");
          if (ev.type === "BOOKMARK") continue;
          const k = key(ev.object);
          const known = store.has(k);
          if (ev.type === "DELETED") store.delete(k);
          else store.set(k, ev.object);
          markDirty(res.name, known && ev.type === "MODIFIED" ? k : undefined);
          if (res.name === "pods" && selected && k === selected.ns + "/" + selected.name) {
            loadTrace();
          }
        }
      }
    } catch (err) {
      if (signal.aborted) return;
    } finally {
      if (counted) {
        connected -= 1;
        setLive();
      }
    }
  }
}

function watchAll() {
  if (session) session.abort();
  session = new AbortController();
  const ns = document.getElementById("namespace").value;
  for (const res of RESOURCES) {
    if (res.cluster && !me.nodes) continue;
    listWatch(res, ns, session.signal);
  }
}

// ------------------------------------------------------------------ pod detail

async function loadTrace() {
  if (!selected) return;
  const want = selected;
  try {
    const resp = await fetch(BASE + "/timeline/" + want.ns + "/" + want.name,
      { credentials: "same-origin" });
    const tl = await resp.json();
    if (selected !== want) return;
    if (!resp.ok) {
      fill("trace", [row(["", "", tl.message || resp.statusText])]);
      return;
    }
    fill("trace", tl.steps.map((s) => row([(s.failed ? "! " : "") + s.step,
      "+" + s.gapSeconds.toFixed(s.precise ? 3 : 0) + "s", s.detail],
    { class: s.failed ? "bad" : "" })));
    document.getElementById("trace-result").textContent = "result: " + tl.result
      + " (phase " + tl.phase + ")";
  } catch (err) {
    // the request broke (this host's network changed): ask again
    if (selected === want) setTimeout(loadTrace, 1000);
  }
}

async function tailLog() {
  if (logAbort) logAbort.abort();
  logAbort = new AbortController();
  const out = document.getElementById("log");
  out.textContent = "";
  const container = document.getElementById("log-container").value;
  const path = "/api/v1/namespaces/" + selected.ns + "/pods/" + selected.name
    + "/log?follow=true&tailLines=200" + (container ? "&container=" + encodeURIComponent(container) : "");
  try {
    const resp = await fetch(API + path, { signal: logAbort.signal, credentials: "same-origin" });
    if (!resp.ok) {
      let msg = resp.statusText;
      try { msg = (await resp.json()).message || msg; } catch (e) { /* not JSON */ }
      out.textContent = "(no log: " + msg + ")";
      out.className = "bad";
      return;
    }
    out.className = "";
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.textContent += decoder.decode(value, { stream: true });
      out.scrollTop = out.scrollHeight;
    }
  } catch (err) {
    // aborted on purpose (another pod or container was picked), or the stream broke
    // (this host's network changed): then follow again
    if (!logAbort.signal.aborted) setTimeout(tailLog, 1000);
  }
}

function openPod(ns, name) {
  selected = { ns, name };
  document.getElementById("pod-detail").hidden = false;
  document.getElementById("detail-name").textContent = ns + "/" + name;
  const pod = (stores.pods || new Map()).get(ns + "/" + name);
  const select = document.getElementById("log-container");
  const names = pod ? [...(pod.spec.initContainers || []), ...pod.spec.containers].map((c) => c.name)
    : [];
  select.replaceChildren(...names.map((n) => {
    const o = el("option", n);
    o.value = n;
    return o;
  }));
  if (pod && pod.spec.containers.length) select.value = pod.spec.containers[0].name;
  fill("trace", []);
  loadTrace();
  tailLog();
}

function closePod() {
  selected = null;
  if (logAbort) logAbort.abort();
  document.getElementById("pod-detail").hidden = true;
}

// ------------------------------------------------------------------ start

async function start() {
  const resp = await fetch(BASE + "/whoami", { credentials: "same-origin" });
  me = await resp.json();
  const select = document.getElementById("namespace");
  const choices = me.namespaces === null ? ["", ...await namespaces()] : me.namespaces;
  select.replaceChildren(...choices.map((n) => {
    const o = el("option", n || "all namespaces");
    o.value = n;
    return o;
  }));
  const wanted = new URLSearchParams(location.search).get("namespace");
  if (wanted !== null && choices.includes(wanted)) select.value = wanted;
  select.onchange = () => {
    closePod();
    watchAll();
  };
  document.getElementById("detail-close").onclick = closePod;
  document.getElementById("log-container").onchange = tailLog;
  watchAll();
  setInterval(() => markDirty("ages"), 10000); // ages; no requests
}

async function namespaces() {
  try {
    return (await getJSON("/api/v1/namespaces")).items.map((n) => n.metadata.name).sort();
  } catch (err) {
    return [];
  }
}

start();
