// A task's console: live lines over Server-Sent Events, earlier lines a
// page at a time, a search over the whole log. The page keeps at most
// MAX_LINES lines, so a log of a million lines stays responsive.
"use strict";

(() => {
  const MAX_LINES = 20000;
  const box = document.getElementById("console");
  if (!box) return;
  const log = document.getElementById("log");
  const follow = document.getElementById("log-follow");
  const earlierBtn = document.getElementById("log-earlier");
  const base = box.dataset.base.slice(document.querySelector('meta[name="ui-prefix"]').content.length);
  let earlier = box.dataset.earlier;

  function lineEl(l) {
    const d = document.createElement("div");
    d.className = l.l === "error" ? "ln err" : "ln";
    const t = document.createElement("time");
    t.textContent = l.t;
    const s = document.createElement("span");
    s.textContent = l.x;
    d.append(t, s);
    return d;
  }

  function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 40; }

  function append(lines) {
    const stick = follow.checked || atBottom();
    const frag = document.createDocumentFragment();
    lines.forEach((l) => frag.append(lineEl(l)));
    log.append(frag);
    const empty = document.getElementById("log-empty");
    if (empty) empty.remove();
    // Drop the oldest lines past the cap; "earlier" then starts over.
    let extra = log.childElementCount - MAX_LINES;
    if (extra > 0) {
      while (extra-- > 0) log.firstElementChild.remove();
      earlierBtn.hidden = true;
    }
    if (stick) log.scrollTop = log.scrollHeight;
  }

  async function loadEarlier() {
    if (!earlier) return;
    earlierBtn.disabled = true;
    try {
      const page = await UI.getJSON(`${base}/lines?before=${encodeURIComponent(earlier)}`);
      const before = log.scrollHeight;
      const frag = document.createDocumentFragment();
      page.lines.forEach((l) => frag.append(lineEl(l)));
      log.prepend(frag);
      log.scrollTop += log.scrollHeight - before;
      earlier = page.earlier;
      earlierBtn.hidden = !earlier || log.childElementCount >= MAX_LINES;
    } catch (e) {
      UI.toast(`Loading earlier lines failed: ${e.message}`, true);
    } finally {
      earlierBtn.disabled = false;
    }
  }

  function stream() {
    const src = new EventSource(UI.url(`${base}/stream?after=${encodeURIComponent(box.dataset.newest || "")}`));
    src.addEventListener("lines", (ev) => {
      const msg = JSON.parse(ev.data);
      append(msg.lines);
      document.getElementById("log-total").textContent = `${msg.total >= 10000 ? "10,000+" : msg.total} log events`;
    });
    src.addEventListener("failure", (ev) => {
      UI.toast(`Console: ${JSON.parse(ev.data).error}`, true);
      src.close();
    });
  }

  async function search(q) {
    const out = document.getElementById("log-results");
    out.hidden = false;
    out.textContent = "Searching…";
    try {
      const res = await UI.getJSON(`${base}/search?q=${encodeURIComponent(q)}`);
      out.textContent = "";
      const h = document.createElement("p");
      h.textContent = `${res.matches.length}${res.truncated ? "+" : ""} lines of ${res.scanned} contain “${q}”.`;
      out.append(h);
      const list = document.createElement("ol");
      list.className = "log matches";
      const lower = q.toLowerCase();
      for (const m of res.matches) {
        const li = document.createElement("li");
        li.value = m.n;
        const i = m.x.toLowerCase().indexOf(lower);
        const mark = document.createElement("mark");
        mark.textContent = m.x.slice(i, i + q.length);
        li.append(m.x.slice(0, i), mark, m.x.slice(i + q.length));
        list.append(li);
      }
      out.append(list);
    } catch (e) {
      out.textContent = `Search failed: ${e.message}`;
    }
  }

  earlierBtn.addEventListener("click", loadEarlier);
  document.getElementById("log-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = document.getElementById("log-q").value.trim();
    if (q) search(q);
  });
  follow.addEventListener("change", () => { if (follow.checked) log.scrollTop = log.scrollHeight; });
  log.scrollTop = log.scrollHeight;
  stream();
})();
