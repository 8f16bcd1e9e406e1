// The UI's shared behaviour: actions (POST with the CSRF token), messages,
// live parts of pages, the tasks table's selection and bulk actions, task
// and queue actions. No library; every page works with this file alone.
"use strict";

const UI = (() => {
  const meta = (name) => { const m = document.querySelector(`meta[name="${name}"]`); return m ? m.content : ""; };
  const prefix = meta("ui-prefix");
  const csrf = meta("csrf-token");

  function url(path) { return prefix + path; }

  // toast shows a message in the live region (errors stay until the next).
  let toastTimer = 0;
  function toast(msg, error) {
    const t = document.getElementById("toast");
    if (!t) return;
    t.textContent = msg;
    t.className = error ? "show error" : "show";
    clearTimeout(toastTimer);
    if (!error) toastTimer = setTimeout(() => { t.className = ""; }, 4000);
  }

  async function getJSON(path) {
    const res = await fetch(url(path), { headers: { "X-Requested-With": "clearml-ui", "Accept": "application/json" } });
    const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    return body;
  }

  // post runs an action; a failure throws the server's message.
  async function post(path, body) {
    const res = await fetch(url(path), {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "X-Requested-With": "clearml-ui" },
      body: JSON.stringify(body),
    });
    const out = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (!res.ok && !(out.failed && out.done)) throw new Error(out.error || (out.failed && out.failed.length ? out.failed[0].error : `HTTP ${res.status}`));
    return out;
  }

  // Live parts: an element with data-live="ms" and an id is fetched again
  // every ms and its content replaced, unless the user is working in it.
  const refreshers = {};
  async function refresh(id) {
    const el = document.getElementById(id);
    if (!el || document.hidden) return;
    if (el.contains(document.activeElement) && document.activeElement !== document.body &&
        ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
    let html;
    try {
      const res = await fetch(location.href, { headers: { "X-Requested-With": "clearml-ui" } });
      if (res.status === 401) { toast("Signed out: reload the page to sign in again.", true); stopRefresh(id); return; }
      if (!res.ok) return;
      html = await res.text();
    } catch (e) { return; }
    const fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
    if (!fresh || fresh.innerHTML === el.innerHTML) return;
    const checked = new Set([...el.querySelectorAll("input[name=sel]:checked")].map((c) => c.value));
    el.innerHTML = fresh.innerHTML;
    el.querySelectorAll("input[name=sel]").forEach((c) => { c.checked = checked.has(c.value); });
    el.dispatchEvent(new CustomEvent("ui:refreshed", { bubbles: true }));
  }
  function startRefresh(el) {
    const ms = parseInt(el.dataset.live, 10);
    if (ms > 0 && el.id) refreshers[el.id] = setInterval(() => refresh(el.id), ms);
  }
  function stopRefresh(id) { clearInterval(refreshers[id]); delete refreshers[id]; }

  // The tasks table: selection and bulk actions.
  function selected() { return [...document.querySelectorAll("input[name=sel]:checked")].map((c) => c.value); }
  function updateCount() {
    const n = selected().length;
    const c = document.getElementById("selected-count");
    if (c) c.textContent = n ? `${n} selected` : "No task selected";
  }
  async function bulk(action) {
    const ids = selected();
    if (!ids.length) { toast("Select tasks first.", true); return; }
    if (action === "delete" && !confirm(`Delete ${ids.length} task(s)? This cannot be undone.`)) return;
    const q = document.getElementById("bulk-queue");
    try {
      const out = await post("/tasks/actions", { action, ids, queue: q ? q.value : "" });
      const failed = out.failed || [];
      toast(`${action}: ${out.done} done` + (failed.length ? `, ${failed.length} failed: ${failed[0].error}` : ""), failed.length > 0);
      refresh("task-table");
    } catch (e) { toast(`${action} failed: ${e.message}`, true); }
  }

  // A task page: its actions and its live status.
  async function taskAction(action) {
    const head = document.querySelector(".task-head");
    const q = document.getElementById("enqueue-queue");
    try {
      const out = await post("/tasks/actions", { action, ids: [head.dataset.task], queue: q ? q.value : "" });
      if (out.location) { location.href = out.location; return; }
      toast(`${action}: done`);
      pollStatus();
    } catch (e) { toast(`${action} failed: ${e.message}`, true); }
  }
  // Task actions that do not apply to the status are hidden.
  function showActions(status) {
    document.querySelectorAll(".task-head [data-when]").forEach((e) => {
      e.hidden = !e.dataset.when.split(" ").includes(status);
    });
  }
  async function pollStatus() {
    const head = document.querySelector(".task-head");
    if (!head || document.hidden) return;
    try {
      const st = await getJSON(head.dataset.statusUrl.slice(prefix.length));
      const s = document.getElementById("task-status");
      if (s.textContent !== st.status) {
        s.textContent = st.status;
        s.className = `status s-${st.status}`;
        showActions(st.status);
        document.dispatchEvent(new CustomEvent("ui:status", { detail: st }));
      }
      document.getElementById("task-reason").textContent =
        [st.status_reason, st.status_message].filter(Boolean).join(" · ");
    } catch (e) { /* the next poll tries again */ }
  }

  async function queueAction(btn) {
    const body = { action: btn.dataset.queueAction, queue: btn.dataset.queue, task: btn.dataset.task };
    if (body.action === "move") {
      const sel = btn.parentElement.querySelector("select[data-move-select]");
      if (!sel || !sel.value) { toast("There is no other queue.", true); return; }
      body.to = sel.value;
    }
    try {
      await post("/queues/actions", body);
      toast(`${body.action}: done`);
      await refresh("queues");
      const again = document.querySelector(`[data-queue-action="${body.action}"][data-queue="${body.queue}"][data-task="${body.task}"]`);
      if (again) again.focus();
    } catch (e) { toast(`${body.action} failed: ${e.message}`, true); }
  }

  async function saveParam(form) {
    const table = form.closest("table");
    try {
      await post(`/tasks/${table.dataset.task}/hyper-params`,
        { section: form.dataset.section, name: form.dataset.name, value: form.elements.value.value });
      toast(`${form.dataset.section}/${form.dataset.name} saved`);
    } catch (e) { toast(`Saving failed: ${e.message}`, true); }
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("button");
    if (!t) return;
    if (t.dataset.bulk) bulk(t.dataset.bulk);
    else if (t.dataset.taskAction) taskAction(t.dataset.taskAction);
    else if (t.dataset.queueAction) queueAction(t);
    else if (t.hasAttribute("data-compare")) {
      const ids = selected();
      if (ids.length < 2 || ids.length > 10) { toast("Select 2 to 10 tasks to compare.", true); return; }
      location.href = url(`/compare?ids=${ids.join(",")}`);
    }
  });
  document.addEventListener("change", (ev) => {
    if (ev.target.id === "sel-all") {
      document.querySelectorAll("input[name=sel]").forEach((c) => { c.checked = ev.target.checked; });
    }
    if (ev.target.name === "sel" || ev.target.id === "sel-all") updateCount();
  });
  document.addEventListener("submit", (ev) => {
    if (ev.target.classList.contains("param-edit")) { ev.preventDefault(); saveParam(ev.target); }
  });
  document.addEventListener("ui:refreshed", updateCount);

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live]").forEach(startRefresh);
    if (document.querySelector(".task-head")) {
      showActions(document.getElementById("task-status").textContent);
      setInterval(pollStatus, 2000);
    }
    updateCount();
  });

  return { url, toast, getJSON, post, refresh };
})();
