// ferry console: a single page on top of ferry's JSON API. No framework and
// no build step: the file is embedded into the binary as written. Every
// request goes to the same routes the API documents; the session cookie
// stands in for the bearer token, and state changes carry the CSRF token.

const $ = (sel, root = document) => root.querySelector(sel);
const main = $("#main");

let session = null; // {sub, tenant, role, csrfToken, expiresAt}
let actingTenant = null; // a platform admin acting on another tenant
let teardown = []; // closers of the current page's streams and timers

// ---------- small helpers ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}
const fmtNum = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "–");
function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
const statusBadge = (s) => h("span", { class: `status status-${s}`, text: s.replace(/_/g, " ") });
const TERMINAL = new Set(["completed", "failed", "cancelled", "rolled_back"]);

function toast(text, kind = "") {
  const t = h("div", { class: `toast ${kind}`, text });
  $("#toasts").append(t);
  setTimeout(() => t.remove(), 8000);
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const hs = { Accept: "application/json", ...headers };
  if (method !== "GET" && session) hs["X-CSRF-Token"] = session.csrfToken;
  if (actingTenant) hs["X-Tenant-Id"] = actingTenant;
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    hs["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers: hs, body: payload, credentials: "same-origin" });
  if (raw) return res;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const e = data && data.error ? data.error : { code: `http_${res.status}`, message: text || res.statusText };
    if (res.status === 401 && !path.startsWith("/console/")) {
      session = null;
      location.hash = "#/signin";
    }
    throw new ApiError(res.status, e.code, e.message);
  }
  return data;
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, e.code ? `${e.message} (${e.code})` : String(e));
}

function page(title, ...children) {
  main.replaceChildren(h("h1", { text: title }), ...children);
  main.setAttribute("aria-busy", "false");
  document.title = `${title} · ferry console`;
}

// The `event:` names of the API's streams: the list's, and the event tags.
const STREAM_EVENTS = ["workflow", "submitted.v1", "started.v1", "step_started.v1", "step_progressed.v1",
  "step_succeeded.v1", "step_failed.v1", "awaiting_signal.v1", "signal_received.v1", "paused.v1", "resumed.v1",
  "cancel_requested.v1", "compensation_started.v1", "step_compensated.v1", "completed.v1", "failed.v1",
  "cancelled.v1", "rolled_back.v1", "timer_scheduled.v1", "timer_fired.v1"];

// Live updates: Server-Sent Events where the API has a stream, else polling.
function live(url, onMessage, poll) {
  let closed = false;
  let timer = null;
  const startPolling = () => {
    if (closed || timer) return;
    const tick = async () => {
      if (closed) return;
      try { await poll(); } catch { /* shown by the page */ }
      if (!closed) timer = setTimeout(tick, 1500);
    };
    timer = setTimeout(tick, 1500);
  };
  let es = null;
  if (url && window.EventSource && !actingTenant) {
    es = new EventSource(url);
    es.onmessage = (m) => onMessage(m);
    es.addEventListener("error", () => {
      // A stream the server ended (the workflow finished) or cannot give.
      es.close();
      startPolling();
    });
    // Named events (`event: <type>`) arrive only on their own listeners.
    for (const t of STREAM_EVENTS) es.addEventListener(t, onMessage);
  } else {
    startPolling();
  }
  teardown.push(() => {
    closed = true;
    if (es) es.close();
    if (timer) clearTimeout(timer);
  });
  return es;
}

// ---------- sign-in ----------

async function loadSession() {
  try {
    session = await api("/console/session");
  } catch {
    session = null;
  }
  renderChrome();
}

function renderChrome() {
  const signed = !!session;
  $("#nav").hidden = !signed;
  $("#who").hidden = !signed;
  for (const a of document.querySelectorAll("[data-platform]")) {
    a.hidden = !(signed && session.role === "platform_admin");
  }
  if (signed) {
    $("#who-text").textContent = `${session.sub} · ${session.role.replace("_", " ")} · tenant ${session.tenant}`;
  }
}

async function signIn(body) {
  session = await api("/console/signin", { method: "POST", body });
  renderChrome();
}

function signinPage(params) {
  const ticket = params.get("ticket");
  if (ticket) {
    page("Signing in…", h("p", { class: "muted" }, h("span", { class: "spinner" }), " checking the sign-in link"));
    // Drop the ticket from the address bar and history at once.
    history.replaceState(null, "", "/console/#/signin");
    signIn({ ticket })
      .then(() => { location.hash = "#/workflows"; })
      .catch((e) => page("Sign in", errorBox(e), signinForm()));
    return;
  }
  page("Sign in", h("p", { class: "muted" },
    "Paste a bearer token, or open a link printed by ", h("code", { text: "ferry console-link --tenant T" }), "."),
  signinForm());
}

function signinForm() {
  const out = h("div");
  const form = h("form", {
    id: "signin-form",
    onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      try {
        await signIn({ token: $("#token", form).value.trim() });
        location.hash = "#/workflows";
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
    },
  },
  h("label", { for: "token", text: "Bearer token" }),
  h("textarea", { id: "token", name: "token", required: true, autocomplete: "off", spellcheck: "false" }),
  h("div", { class: "actions" }, h("button", { type: "submit", text: "Sign in" })),
  out);
  return form;
}

$("#signout").addEventListener("click", async () => {
  try { await api("/console/signout", { method: "POST" }); } catch { /* signed out anyway */ }
  session = null;
  actingTenant = null;
  renderChrome();
  location.hash = "#/signin";
});

// ---------- workflows ----------

const STATUSES = ["pending", "running", "awaiting_confirmation", "paused", "compensating", "completed", "failed", "cancelled", "rolled_back"];

// The list's summaries carry no overall percent: the step's fraction.
function progressText(w) {
  const p = w.progress;
  if (!p || typeof p.fraction !== "number" || TERMINAL.has(w.status)) return "";
  return `${Math.round(p.fraction * 100)}% of step`;
}

async function workflowsPage(params) {
  const platform = session.role === "platform_admin";
  const q = new URLSearchParams();
  for (const k of ["kind", "status", "after", "tenant"]) if (params.get(k)) q.set(k, params.get(k));
  q.set("order", "desc");
  q.set("limit", "20");
  const filters = h("form", {
    class: "filters",
    "aria-label": "Filter workflows",
    onsubmit: (ev) => {
      ev.preventDefault();
      const f = new URLSearchParams();
      for (const k of ["kind", "status", "tenant"]) {
        const el = ev.target.elements[k];
        if (el && el.value) f.set(k, el.value);
      }
      location.hash = `#/workflows?${f}`;
    },
  },
  h("div", {}, h("label", { for: "f-kind", text: "Kind" }),
    h("select", { id: "f-kind", name: "kind" },
      ["", "export", "rehydrate"].map((k) => h("option", { value: k, selected: params.get("kind") === k, text: k || "all" })))),
  h("div", {}, h("label", { for: "f-status", text: "Status" }),
    h("select", { id: "f-status", name: "status" },
      ["", ...STATUSES].map((s) => h("option", { value: s, selected: params.get("status") === s, text: s || "all" })))),
  platform ? h("div", {}, h("label", { for: "f-tenant", text: "Tenant" }),
    h("input", { id: "f-tenant", name: "tenant", value: params.get("tenant") || "", placeholder: "all tenants" })) : null,
  h("button", { type: "submit", text: "Filter" }));
  const body = h("tbody");
  const more = h("div", { class: "actions" });
  const err = h("div");
  page("Workflows", filters, err,
    h("table", { "aria-label": platform ? "Workflows, failed and waiting first, then newest first" : "Workflows, newest first" },
      h("thead", {}, h("tr", {},
        h("th", { text: "Workflow" }), platform ? h("th", { text: "Tenant" }) : null,
        h("th", { text: "Kind" }), h("th", { text: "Status" }), h("th", { text: "Step" }),
        h("th", { class: "num", text: "Progress" }), h("th", { text: "Created" }))),
      body),
    more);
  // A platform admin reads what needs a hand first: failed, then waiting
  // (a confirmation, a pause), then the rest, each newest first.
  const rank = (w) => (w.status === "failed" ? 0 : ["awaiting_confirmation", "paused"].includes(w.status) ? 1 : 2);
  const load = async () => {
    const data = await api(`/api/v1/workflows?${q}`);
    const rows = platform ? [...data.workflows].sort((a, b) => rank(a) - rank(b)) : data.workflows;
    body.replaceChildren(...rows.map((w) => h("tr", {},
      h("td", {}, h("a", { href: `#/workflows/${w.id}${platform && w.tenantId !== session.tenant ? `?tenant=${w.tenantId}` : ""}`, class: "mono", text: w.id })),
      platform ? h("td", { text: w.tenantId }) : null,
      h("td", { text: w.kind }),
      h("td", {}, statusBadge(w.status)),
      h("td", { text: w.currentStep || "" }),
      h("td", { class: "num", text: progressText(w) }),
      h("td", { text: fmtTime(w.createdAt) }))));
    if (!data.workflows.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted", text: "No workflows yet." })));
    more.replaceChildren();
    if (data.nextCursor) {
      const n = new URLSearchParams(params);
      n.set("after", data.nextCursor);
      more.append(h("a", { href: `#/workflows?${n}`, text: "Next page →" }));
    }
    if (params.get("after")) more.prepend(h("a", { href: "#/workflows", text: "← First page" }));
  };
  try { await load(); } catch (e) { err.replaceChildren(errorBox(e)); }
  let pending = null;
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => { pending = null; try { await load(); } catch { /* keep the page */ } }, 300);
  };
  const sq = new URLSearchParams();
  if (params.get("tenant")) sq.set("tenant", params.get("tenant"));
  live(`/api/v1/workflows/stream?${sq}`, refresh, load);
}

// One workflow: progress, timeline, actions; the kind's own panel.
async function workflowPage(id, params) {
  actingTenant = params.get("tenant") && params.get("tenant") !== session.tenant ? params.get("tenant") : null;
  const head = h("div");
  const kindPanel = h("div");
  const timeline = h("tbody");
  const err = h("div");
  page(`Workflow ${id.slice(0, 8)}…`, err, head, kindPanel,
    h("h2", { text: "Event timeline" }),
    h("table", { "aria-label": "Event timeline" },
      h("thead", {}, h("tr", {}, h("th", { class: "num", text: "#" }), h("th", { text: "Time" }), h("th", { text: "Event" }),
        h("th", { text: "Step" }), h("th", { class: "num", text: "Attempt" }), h("th", { text: "Error" }), h("th", { text: "Next retry" }))),
      timeline));
  let wf = null;
  let lastStatus = null;
  let seen = 0;
  const addEvent = (e) => {
    if (e.seq <= seen) return;
    seen = e.seq;
    const err = e.error ? `${e.error.code || ""} ${e.error.message || ""}`.trim() : "";
    timeline.append(h("tr", {},
      h("td", { class: "num", text: e.seq }), h("td", { text: fmtTime(e.at) }), h("td", { class: "mono", text: e.type }),
      h("td", { text: e.step || "" }), h("td", { class: "num", text: e.attempt ?? "" }),
      h("td", { class: err ? "error" : "", text: err }), h("td", { text: e.retryAt ? fmtTime(e.retryAt) : "" })));
  };
  const loadEvents = async () => {
    const data = await api(`/api/v1/workflows/${id}/events?after=${seen}`);
    for (const e of data.events) addEvent(e);
  };
  const load = async () => {
    wf = await api(`/api/v1/workflows/${id}`);
    const kindStatus = await renderKind(wf, kindPanel, load);
    renderHead(wf, kindStatus, head, load);
    if (lastStatus && lastStatus !== wf.status && TERMINAL.has(wf.status)) {
      const ok = wf.status === "completed" || wf.status === "rolled_back";
      toast(`${wf.kind} ${wf.status.replace("_", " ")}`, ok ? "ok" : "bad");
    }
    lastStatus = wf.status;
    await loadEvents();
  };
  try {
    await load();
  } catch (e) {
    page("Workflow not found", errorBox(e), h("p", {}, h("a", { href: "#/workflows", text: "Back to workflows" })));
    return;
  }
  let pending = null;
  live(`/api/v1/workflows/${id}/events/stream?after=${seen}`, (m) => {
    try { addEvent(JSON.parse(m.data)); } catch { /* heartbeat */ }
    if (pending) return;
    pending = setTimeout(async () => { pending = null; try { await load(); } catch (e) { err.replaceChildren(errorBox(e)); } }, 250);
  }, load);
}

// The workflow's facts; `ks` is its kind's status view (overall percent,
// rows and bytes so far).
function renderHead(wf, ks, box, reload) {
  const p = wf.progress || {};
  const started = wf.startedAt || wf.createdAt;
  const finished = ks && ks.completedAt ? new Date(ks.completedAt) : new Date(wf.updatedAt || Date.now());
  const end = TERMINAL.has(wf.status) ? finished : new Date();
  const elapsed = started ? end - new Date(started) : null;
  const pct = ks && typeof ks.progress === "number" ? ks.progress : (wf.status === "completed" ? 100 : 0);
  const estimate = !TERMINAL.has(wf.status) && pct > 0 && elapsed ? (elapsed * (100 - pct)) / pct : null;
  const actions = h("div", { class: "actions" });
  if (!TERMINAL.has(wf.status)) {
    actions.append(h("button", {
      type: "button", class: "secondary", id: "cancel", text: "Cancel",
      onclick: async () => {
        try { await api(`/api/v1/workflows/${wf.id}/cancel`, { method: "POST" }); toast("Cancellation requested"); await reload(); } catch (e) { toast(e.message, "bad"); }
      },
    }));
  }
  if (wf.status === "failed") {
    actions.append(h("button", {
      type: "button", id: "resume", text: "Resume",
      onclick: async () => {
        try { await api(`/api/v1/workflows/${wf.id}/resume`, { method: "POST" }); toast("Resumed"); await reload(); } catch (e) { toast(e.message, "bad"); }
      },
    }));
  }
  box.replaceChildren(h("div", { class: "panel" },
    h("dl", { class: "facts" },
      h("dt", { text: "Id" }), h("dd", { class: "mono", text: wf.id }),
      h("dt", { text: "Tenant" }), h("dd", { text: wf.tenantId }),
      h("dt", { text: "Kind" }), h("dd", { text: wf.kind }),
      h("dt", { text: "Status" }), h("dd", { id: "wf-status" }, statusBadge(wf.status)),
      h("dt", { text: "Current step" }), h("dd", { id: "wf-step", text: wf.currentStep || "–" }),
      h("dt", { text: "Attempt" }), h("dd", { text: wf.attempt ?? "–" }),
      h("dt", { text: "Rows" }), h("dd", { text: fmtNum(ks?.rowsDone ?? ks?.rowsImported ?? p.rows) }),
      h("dt", { text: "Bytes" }), h("dd", { text: fmtBytes(ks?.bytesDone ?? p.bytes) }),
      h("dt", { text: "Elapsed" }), h("dd", { text: fmtDuration(elapsed) }),
      h("dt", { text: "Estimate" }), h("dd", { text: estimate === null ? "–" : `about ${fmtDuration(estimate)} left` }),
      wf.retryAt ? [h("dt", { text: "Next retry" }), h("dd", { text: fmtTime(wf.retryAt) })] : null,
      wf.error ? [h("dt", { text: "Error" }), h("dd", { class: "error", text: `${wf.error.message} (${wf.error.code})` })] : null),
    h("label", { for: "wf-progress", text: `Progress ${pct}%` }),
    h("progress", { id: "wf-progress", max: 100, value: pct }),
    actions));
}

async function renderKind(wf, box, reload) {
  if (wf.kind === "export") return renderExport(wf, box);
  if (wf.kind === "rehydrate") return renderRehydrate(wf, box, reload);
  box.replaceChildren();
  return null;
}

async function renderExport(wf, box) {
  const s = await api(`/api/v1/tenant/export/${wf.id}/status`);
  // Rows per table: the snapshot's table entries (outputs of finished steps).
  const entries = (wf.outputs?.snapshot?.entries || []).filter((e) => e.table);
  const tableRows = entries.length
    ? h("table", { "aria-label": "Rows per table" },
      h("thead", {}, h("tr", {}, h("th", { text: "Table" }), h("th", { class: "num", text: "Rows" }), h("th", { class: "num", text: "Size" }))),
      h("tbody", {}, entries.map((e) => h("tr", {}, h("td", { text: e.table }), h("td", { class: "num", text: fmtNum(e.rows) }), h("td", { class: "num", text: fmtBytes(e.bytes) })))))
    : null;
  const meta = h("dl", { class: "facts" },
    h("dt", { text: "Profile" }), h("dd", { text: s.profile || "–" }),
    h("dt", { text: "Assets" }), h("dd", { text: s.includeAssets ? "included" : "not included" }),
    h("dt", { text: "Rows" }), h("dd", { text: fmtNum(s.rowsDone) }),
    h("dt", { text: "Size" }), h("dd", { id: "bundle-size", text: fmtBytes(s.sizeBytes) }),
    h("dt", { text: "Checksum" }), h("dd", { id: "bundle-checksum", class: "mono", text: s.checksum || "–" }),
    h("dt", { text: "File" }), h("dd", { id: "bundle-file", class: "mono", text: s.fileName || "–" }),
    h("dt", { text: "Expires" }), h("dd", { text: s.expired ? "expired" : fmtTime(s.expiresAt) }));
  const actions = h("div", { class: "actions" });
  if (s.status === "completed" && !s.expired) {
    actions.append(h("a", {
      id: "download", class: "button", href: `/api/v1/tenant/export/${wf.id}/download`, download: s.fileName || true,
      text: `Download ${s.fileName || "bundle"}`,
    }));
    actions.append(h("a", { href: `#/rehydrate?exportId=${wf.id}`, text: "Rehydrate from this export" }));
  }
  box.replaceChildren(h("h2", { text: "Export" }), h("div", { class: "panel" }, meta, tableRows, actions));
  return s;
}

const MODE_WORDS = {
  replace: "Every row of the tenant's tables in this bundle is deleted and replaced by the bundle's rows.",
  merge: "Rows of the bundle are inserted or update rows with the same key; other rows stay.",
  partial: "The chosen tables are replaced by the bundle's rows; other tables stay as they are.",
};

async function renderRehydrate(wf, box, reload) {
  const s = await api(`/api/v1/tenant/rehydrate/${wf.id}/status`);
  const parts = [h("h2", { text: "Rehydration" })];
  parts.push(h("div", { class: "panel" }, h("dl", { class: "facts" },
    h("dt", { text: "Mode" }), h("dd", { text: s.mode || "–" }),
    h("dt", { text: "Dry run" }), h("dd", { text: s.dryRun ? "yes" : "no" }),
    h("dt", { text: "Phase" }), h("dd", { text: s.phase }),
    h("dt", { text: "Source" }), h("dd", { text: s.exportId ? `export ${s.exportId}` : s.source || "–" }),
    h("dt", { text: "Rows checked" }), h("dd", { text: fmtNum(s.rowsChecked) }),
    h("dt", { text: "Rows imported" }), h("dd", { text: fmtNum(s.rowsImported) }),
    s.backup ? [h("dt", { text: "Backup" }), h("dd", { text: `${fmtBytes(s.backup.sizeBytes)}, kept until ${fmtTime(s.backup.retainedUntil)}${s.backup.expired ? " (expired)" : ""}` })] : null,
    s.restored !== null && s.restored !== undefined ? [h("dt", { text: "Old data restored" }), h("dd", { text: s.restored ? "yes" : "no" })] : null)));
  if (s.previewReady) {
    try {
      const p = await api(`/api/v1/tenant/rehydrate/${wf.id}/preview`);
      parts.push(previewTable(p));
    } catch (e) {
      parts.push(errorBox(e));
    }
  }
  const actions = h("div", { class: "actions" });
  if (s.awaitingConfirmation) {
    actions.append(h("button", {
      type: "button", class: "danger", id: "confirm", text: "Confirm…",
      onclick: () => confirmDialog(s.mode, async () => {
        try {
          await api(`/api/v1/tenant/rehydrate/${wf.id}/confirm`, { method: "POST", body: { confirm: "DELETE" } });
          toast("Confirmed: loading the bundle");
        } catch (e) {
          toast(`${e.message}`, "bad");
        }
        await reload();
      }),
    }));
  }
  if (s.status === "completed" && !s.dryRun && s.backup && !s.backup.expired) {
    actions.append(h("button", {
      type: "button", class: "secondary", id: "rollback", text: "Roll back to the backup",
      onclick: () => confirmDialog("rollback", async () => {
        try {
          await api(`/api/v1/tenant/rehydrate/${wf.id}/rollback`, { method: "POST" });
          toast("Rollback started");
        } catch (e) {
          toast(e.message, "bad");
        }
        await reload();
      }),
    }));
  }
  if (s.reportAvailable) {
    actions.append(h("a", { id: "report", href: `/api/v1/tenant/rehydrate/${wf.id}/report`, download: `rehydrate_${wf.id}_report.ndjson`, text: "Download the error report" }));
  }
  parts.push(actions);
  box.replaceChildren(...parts);
  return s;
}

function previewTable(p) {
  const row = (t) => h("tr", {},
    h("td", { text: t.table }), h("td", { class: "num", text: fmtNum(t.rowsNow) }),
    h("td", { class: "num", text: fmtNum(t.willDelete) }), h("td", { class: "num", text: fmtNum(t.willInsert) }),
    h("td", { class: "num", text: fmtNum(t.willUpdate) }), h("td", { class: "num", text: fmtNum(t.conflicts) }));
  const a = p.assets || {};
  return h("section", { "aria-labelledby": "preview-title" },
    h("h2", { id: "preview-title", text: `Preview (${p.mode})` }),
    h("table", { id: "preview" },
      h("thead", {}, h("tr", {}, h("th", { text: "Table" }), h("th", { class: "num", text: "Rows now" }), h("th", { class: "num", text: "Will delete" }),
        h("th", { class: "num", text: "Will insert" }), h("th", { class: "num", text: "Will update" }), h("th", { class: "num", text: "Conflicts" }))),
      h("tbody", {}, p.tables.map(row)),
      h("tfoot", {}, h("tr", {}, h("th", { text: "Total" }), h("th", {}), h("th", { class: "num", text: fmtNum(p.willDelete) }),
        h("th", { class: "num", text: fmtNum(p.willInsert) }), h("th", { class: "num", text: fmtNum(p.willUpdate) }), h("th", { class: "num", text: fmtNum(p.conflicts) })))),
    h("p", { class: "muted" }, `Assets: ${fmtNum(a.willWrite)} files to write (${fmtBytes(a.willWriteBytes)}), ${fmtNum(a.willDelete)} to delete (${fmtBytes(a.willDeleteBytes)}), ${fmtNum(a.unchanged)} unchanged.`),
    p.warnings && p.warnings.length ? h("ul", {}, p.warnings.map((w) => h("li", { text: w.message || JSON.stringify(w) }))) : null);
}

// The typed confirmation: the button stays disabled until DELETE is typed.
function confirmDialog(mode, onConfirm) {
  const dlg = $("#confirm-dialog");
  const input = $("#confirm-input");
  const ok = $("#confirm-ok");
  $("#confirm-title").textContent = mode === "rollback" ? "Roll back this rehydration?" : `Confirm the ${mode} rehydration`;
  $("#confirm-text").textContent = mode === "rollback"
    ? "The tenant's data goes back to the backup taken before this rehydration; rows written since are lost."
    : `${MODE_WORDS[mode] || ""} A backup is taken first; nothing changes if loading fails.`;
  input.value = "";
  ok.disabled = true;
  input.oninput = () => { ok.disabled = input.value !== "DELETE"; };
  $("#confirm-cancel").onclick = () => dlg.close("cancel");
  $("#confirm-form").onsubmit = (ev) => {
    ev.preventDefault();
    if (input.value !== "DELETE") return;
    dlg.close("ok");
    onConfirm();
  };
  dlg.showModal();
  input.focus();
}

// ---------- export ----------

async function exportPage() {
  const out = h("div");
  const tablesBox = h("fieldset", {}, h("legend", { text: "Tables (none chosen: all)" }));
  const form = h("form", {
    id: "export-form",
    onsubmit: async (ev) => {
      ev.preventDefault();
      const f = ev.target.elements;
      const body = { profile: f.profile.value, includeAssets: f.assets.checked };
      if (f.from.value || f.to.value) body.dateRange = { from: f.from.value || undefined, to: f.to.value || undefined };
      const chosen = [...form.querySelectorAll("input[name=table]:checked")].map((c) => c.value);
      if (chosen.length) body.tables = chosen;
      out.replaceChildren(h("p", {}, h("span", { class: "spinner" }), " submitting…"));
      try {
        const r = await api("/api/v1/tenant/export", { method: "POST", body, headers: { "Idempotency-Key": crypto.randomUUID() } });
        const id = r.job?.id || r.id;
        toast("Export started");
        location.hash = `#/workflows/${id}`;
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
    },
  },
  h("label", { for: "profile", text: "Profile" }),
  h("select", { id: "profile", name: "profile" },
    h("option", { value: "lite", text: "lite — NDJSON, every table" }),
    h("option", { value: "native", text: "native — database dump" }),
    h("option", { value: "analytics", text: "analytics — CSV for a date range" })),
  h("label", { class: "check" }, h("input", { type: "checkbox", id: "assets", name: "assets" }), "Include the tenant's files (assets)"),
  h("div", { class: "row" },
    h("div", {}, h("label", { for: "from", text: "From (analytics)" }), h("input", { type: "date", id: "from", name: "from" })),
    h("div", {}, h("label", { for: "to", text: "To (analytics)" }), h("input", { type: "date", id: "to", name: "to" }))),
  tablesBox,
  h("div", { class: "actions" }, h("button", { type: "submit", id: "export-submit", text: "Start export" })),
  out);
  page("Export", form);
  try {
    const t = await api("/api/v1/tenant/tables");
    tablesBox.append(...t.tables.map((name) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "table", value: name }), name)));
  } catch (e) {
    tablesBox.append(errorBox(e));
  }
}

// ---------- rehydrate ----------

async function rehydratePage(params) {
  const out = h("div");
  const exportsSel = h("select", { id: "export-id", name: "exportId" }, h("option", { value: "", text: "— upload a bundle instead —" }));
  const tablesBox = h("fieldset", { id: "tables-box" }, h("legend", { text: "Tables (partial mode)" }));
  const bar = h("progress", { id: "upload-progress", max: 100, value: 0, hidden: true });
  const form = h("form", {
    id: "rehydrate-form",
    onsubmit: async (ev) => {
      ev.preventDefault();
      const f = ev.target.elements;
      const mode = f.mode.value;
      const dryRun = f.dryRun.checked;
      const tables = [...form.querySelectorAll("input[name=table]:checked")].map((c) => c.value);
      out.replaceChildren();
      try {
        let id;
        if (f.exportId.value) {
          const body = { exportId: f.exportId.value, mode, dryRun };
          if (tables.length) body.tables = tables;
          const r = await api("/api/v1/tenant/rehydrate", { method: "POST", body });
          id = r.job.id;
        } else {
          const file = f.bundle.files[0];
          if (!file) throw new ApiError(400, "no_bundle", "choose a bundle to upload, or one of your exports");
          const q = new URLSearchParams({ mode, dryRun: String(dryRun) });
          if (tables.length) q.set("tables", tables.join(","));
          const r = await upload(`/api/v1/tenant/rehydrate?${q}`, file, bar);
          id = r.job.id;
        }
        toast(dryRun ? "Dry run started" : "Rehydration started: review the preview, then confirm");
        location.hash = `#/workflows/${id}`;
      } catch (e) {
        out.replaceChildren(errorBox(e));
      }
    },
  },
  h("label", { for: "export-id", text: "One of your exports" }), exportsSel,
  h("label", { for: "bundle", text: "Or upload a bundle (.zip)" }),
  h("input", { type: "file", id: "bundle", name: "bundle", accept: ".zip,application/zip" }),
  bar,
  h("label", { for: "mode", text: "Mode" }),
  h("select", { id: "mode", name: "mode" },
    h("option", { value: "replace", text: "replace — the bundle's rows replace the tenant's" }),
    h("option", { value: "merge", text: "merge — insert new rows, update same keys" }),
    h("option", { value: "partial", text: "partial — replace only the chosen tables" })),
  tablesBox,
  h("label", { class: "check" }, h("input", { type: "checkbox", id: "dry-run", name: "dryRun" }), "Dry run (validate and preview only, change nothing)"),
  h("div", { class: "actions" }, h("button", { type: "submit", id: "rehydrate-submit", text: "Validate and preview" })),
  out);
  page("Rehydrate", h("p", { class: "muted" }, "ferry validates the bundle and shows what would change; nothing is changed until you confirm."), form);
  try {
    const list = await api("/api/v1/workflows?kind=export&status=completed&order=desc&limit=50");
    exportsSel.append(...list.workflows.map((w) => h("option", { value: w.id, selected: params.get("exportId") === w.id, text: `${w.id} (${fmtTime(w.createdAt)})` })));
    const t = await api("/api/v1/tenant/tables");
    tablesBox.append(...t.tables.map((name) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "table", value: name }), name)));
  } catch (e) {
    out.replaceChildren(errorBox(e));
  }
}

// A streamed upload with progress (fetch cannot report upload progress).
function upload(url, file, bar) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", url);
    x.setRequestHeader("Content-Type", "application/zip");
    x.setRequestHeader("Accept", "application/json");
    x.setRequestHeader("X-CSRF-Token", session.csrfToken);
    if (actingTenant) x.setRequestHeader("X-Tenant-Id", actingTenant);
    bar.hidden = false;
    x.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total); };
    x.onload = () => {
      let data = null;
      try { data = JSON.parse(x.responseText); } catch { data = null; }
      if (x.status >= 200 && x.status < 300) resolve(data);
      else reject(new ApiError(x.status, data?.error?.code || `http_${x.status}`, data?.error?.message || x.statusText));
    };
    x.onerror = () => reject(new ApiError(0, "network_error", "the upload was interrupted"));
    x.send(file);
  });
}

// ---------- platform admin ----------

async function tenantsPage() {
  const body = h("tbody");
  page("Tenants", h("p", { class: "muted", text: "Tenants with workflows, failed and stuck first." }),
    h("table", { "aria-label": "Tenants" }, h("thead", {}, h("tr", {}, h("th", { text: "Tenant" }), h("th", { class: "num", text: "Failed" }),
      h("th", { class: "num", text: "Waiting" }), h("th", { class: "num", text: "Running" }), h("th", { class: "num", text: "Workflows" }), h("th", { text: "Latest" }))), body));
  const tenants = new Map();
  let after = null;
  for (let i = 0; i < 20; i++) {
    const q = new URLSearchParams({ order: "desc", limit: "200" });
    if (after) q.set("after", after);
    const page = await api(`/api/v1/workflows?${q}`);
    for (const w of page.workflows) {
      const t = tenants.get(w.tenantId) || { failed: 0, waiting: 0, running: 0, total: 0, latest: w.createdAt };
      t.total++;
      if (w.status === "failed") t.failed++;
      if (w.status === "awaiting_confirmation") t.waiting++;
      if (w.status === "running" || w.status === "pending") t.running++;
      if (w.createdAt > t.latest) t.latest = w.createdAt;
      tenants.set(w.tenantId, t);
    }
    after = page.nextCursor;
    if (!after) break;
  }
  const sorted = [...tenants.entries()].sort((a, b) => b[1].failed - a[1].failed || b[1].waiting - a[1].waiting || a[0].localeCompare(b[0]));
  body.replaceChildren(...sorted.map(([name, t]) => h("tr", {},
    h("td", {}, h("a", { href: `#/workflows?tenant=${encodeURIComponent(name)}`, text: name })),
    h("td", { class: "num", text: t.failed }), h("td", { class: "num", text: t.waiting }), h("td", { class: "num", text: t.running }),
    h("td", { class: "num", text: t.total }), h("td", { text: fmtTime(t.latest) }))));
}

async function auditPage() {
  const state = h("div", { class: "panel", id: "audit-state" }, h("span", { class: "spinner" }), " verifying the chain…");
  const body = h("tbody");
  page("Audit log", state, h("table", { "aria-label": "Audit entries, newest first" },
    h("thead", {}, h("tr", {}, h("th", { class: "num", text: "#" }), h("th", { text: "Time" }), h("th", { text: "Action" }),
      h("th", { text: "Actor" }), h("th", { text: "Tenant" }), h("th", { text: "Workflow" }))), body));
  try {
    const v = await api("/api/v1/audit/verify");
    state.replaceChildren(v.ok
      ? h("strong", { class: "status status-completed", text: "chain verified" })
      : h("strong", { class: "status status-failed", text: "chain broken" }),
    ` ${fmtNum(v.entries)} entries`,
    v.anchoredSeq ? `, anchored up to #${v.anchoredSeq}` : "",
    v.firstBrokenSeq ? `, first broken entry #${v.firstBrokenSeq}` : "",
    v.anchorProblem ? ` — ${v.anchorProblem}` : "");
  } catch (e) {
    state.replaceChildren(errorBox(e));
  }
  try {
    const a = await api("/api/v1/audit?order=desc&limit=100");
    body.replaceChildren(...a.entries.map((e) => h("tr", {},
      h("td", { class: "num", text: e.seq ?? "" }), h("td", { text: fmtTime(e.at || e.timestamp) }), h("td", { class: "mono", text: e.action }),
      h("td", { text: e.actor || "" }), h("td", { text: e.tenant || "" }),
      h("td", { class: "mono", text: e.entityId || e.entity_id || "" }))));
  } catch (e) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 6 }, errorBox(e))));
  }
}

// ---------- router ----------

async function route() {
  for (const close of teardown.splice(0)) close();
  actingTenant = null;
  main.setAttribute("aria-busy", "true");
  const hash = location.hash.replace(/^#/, "") || "/workflows";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("#nav a")) {
    if (path.startsWith(a.getAttribute("href").slice(1))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (path === "/signin") return signinPage(params);
  if (!session) await loadSession();
  if (!session) {
    location.hash = "#/signin";
    return;
  }
  try {
    const m = path.match(/^\/workflows\/([0-9a-f-]+)$/);
    if (m) return await workflowPage(m[1], params);
    if (path === "/workflows") return await workflowsPage(params);
    if (path === "/export") return await exportPage();
    if (path === "/rehydrate") return await rehydratePage(params);
    if (path === "/admin/tenants") return await tenantsPage();
    if (path === "/admin/audit") return await auditPage();
    page("Not found", h("p", {}, h("a", { href: "#/workflows", text: "Back to workflows" })));
  } catch (e) {
    page("Something went wrong", errorBox(e));
  }
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
loadSession().then(route);
