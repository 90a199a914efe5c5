// The review desk's keys and buttons. Every change goes to the server at once; text from feeds is only
// ever set with textContent, never parsed as HTML.
"use strict";

(function () {
  const desk = document.getElementById("desk");
  const edition = desk.dataset.edition;
  const cut = parseFloat(desk.dataset.cut);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const statusLine = document.getElementById("status");
  const undoStack = [];
  const memory = "aggregator-desk:" + location.pathname;
  let current = null;

  function say(text, bad) {
    statusLine.textContent = text;
    statusLine.className = bad ? "bad" : "";
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {error: "the desk answered " + response.status}; }
    if (!response.ok) { throw new Error(data.error || ("the desk answered " + response.status)); }
    return data;
  }

  function rows() {
    return Array.from(desk.querySelectorAll(".row")).filter((r) => !r.hidden);
  }

  function focusRow(row) {
    if (!row) { return; }
    if (current) { current.classList.remove("current"); }
    current = row;
    row.classList.add("current");
    row.focus({preventScroll: true});
    row.scrollIntoView({block: "nearest"});
    history.replaceState(null, "", "#" + row.id);
  }

  function step(by) {
    const visible = rows();
    if (!visible.length) { return; }
    const at = visible.indexOf(current);
    const next = at < 0 ? 0 : Math.min(Math.max(at + by, 0), visible.length - 1);
    focusRow(visible[next]);
  }

  function group(key) {
    return desk.querySelector('.group[data-key="' + CSS.escape(key) + '"] .rows');
  }

  function counts() {
    let chosen = 0;
    desk.querySelectorAll(".group").forEach((g) => {
      const count = g.querySelectorAll(".row").length;
      g.querySelector(".count").textContent = count;
      g.classList.toggle("empty", count === 0);
      if (g.dataset.key !== "below" && g.dataset.key !== "left-out") { chosen += count; }
    });
    const shown = document.getElementById("chosen");  // the header's "N of M candidates selected"
    if (shown) { shown.textContent = chosen; }
  }

  // Puts a row where its state says: an accepted row after the section's other accepted rows, an
  // undecided one among the undecided by priority (in its section above the cut, else below it).
  function place(row) {
    const state = row.dataset.state;
    const priority = parseFloat(row.dataset.priority);
    let list;
    if (state === "rejected") {
      list = group("left-out");
      list.appendChild(row);
    } else if (state === "accepted") {
      list = group(row.dataset.section) || group("below");
      const firstUndecided = Array.from(list.children).find((r) => r !== row && r.dataset.state !== "accepted");
      list.insertBefore(row, firstUndecided || null);
    } else {
      list = (priority >= cut && group(row.dataset.section)) || group("below");
      const after = Array.from(list.children).find((r) => r !== row && r.dataset.state === "undecided" &&
                                                         parseFloat(r.dataset.priority) < priority);
      list.insertBefore(row, after || null);
    }
    counts();
  }

  function show(row, outcome) {
    row.dataset.revision = outcome.revision;
    row.dataset.state = outcome.state;
    if (outcome.section) { row.dataset.section = outcome.section; }
    else if (outcome.state === "undecided") { row.dataset.section = row.dataset.predicted; }  // undone: the model's again
    row.classList.remove("accepted", "rejected", "undecided");
    row.classList.add(outcome.state);
    row.querySelector(".badge").textContent = outcome.state;
    row.querySelector(".where bdi").textContent = row.dataset.section.split(" > ").join(" › ");
    const summary = row.querySelector(".summary");
    summary.querySelector(".summary-text").textContent = outcome.summary;
    summary.hidden = !outcome.summary;
    place(row);
    applyFilters();
  }

  async function act(row, action, extra) {
    if (!row) { say("choose a row first (j / k)", true); return; }
    const body = Object.assign({post: parseInt(row.dataset.post, 10), action: action,
                                revision: parseInt(row.dataset.revision, 10), section: row.dataset.section}, extra || {});
    const visible = rows();
    const at = visible.indexOf(row);
    const successor = visible[at + 1] || visible[at - 1] || row;
    try {
      const outcome = await post("/edition/" + edition + "/act", body);
      undoStack.push(outcome.action);
      show(row, outcome);
      say(action + ": " + row.querySelector(".title").textContent.slice(0, 120));
      // After accepting or rejecting, go on to the row that came next, as a mail reader does.
      focusRow(action === "accept" || action === "reject" ? successor : row);
    } catch (error) {
      say(error.message, true);
    }
  }

  async function undo() {
    const action = undoStack.pop();
    if (action === undefined) { say("nothing to undo in this tab", true); return; }
    try {
      const outcome = await post("/edition/" + edition + "/undo", {action: action});
      const row = document.getElementById("post-" + outcome.post);
      show(row, outcome);
      focusRow(row);
      say("undone");
    } catch (error) {
      say(error.message, true);
    }
  }

  function openMove(row) {
    if (!row) { say("choose a row first (j / k)", true); return; }
    const dialog = document.getElementById("move-dialog");
    const select = document.getElementById("move-section");
    select.value = row.dataset.section;
    if (select.selectedIndex < 0) { select.selectedIndex = 0; }
    dialog.returnValue = "";
    dialog.onclose = () => {
      if (dialog.returnValue === "ok" && select.value) { act(row, "move", {section: select.value}); }
      else { focusRow(row); }
    };
    dialog.showModal();
    select.focus();
  }

  function openEdit(row) {
    if (!row) { say("choose a row first (j / k)", true); return; }
    const dialog = document.getElementById("edit-dialog");
    const area = document.getElementById("edit-summary");
    area.value = row.querySelector(".summary-text").textContent || row.querySelector(".opening").textContent;
    dialog.returnValue = "";
    dialog.onclose = () => {
      if (dialog.returnValue === "ok") { act(row, "edit", {summary: area.value}); }
      else { focusRow(row); }
    };
    dialog.showModal();
    area.focus();
    area.select();
  }

  // Adding a post by its URL: the server fetches the page once and the form shows what it read, for the
  // editor to correct; a page that cannot be read leaves the title to them (adding by hand).
  const addDialog = document.getElementById("add-dialog");
  const addUrl = document.getElementById("add-url");
  const addReason = document.getElementById("add-reason");
  let addBusy = false;

  function addSay(text) {
    addReason.textContent = text;
    addReason.hidden = !text;
  }

  function openAdd() {
    addUrl.value = "";
    addSay("");
    document.getElementById("add-fields").hidden = true;
    addDialog.returnValue = "";
    addDialog.onclose = () => { if (current) { focusRow(current); } };
    addDialog.showModal();
    addUrl.focus();
  }

  async function fetchPage() {
    if (addBusy) { return; }
    const url = addUrl.value.trim();
    if (!url) { addSay("give the post's URL"); return; }
    addBusy = true;
    addSay("fetching…");
    try {
      const page = await post("/edition/" + edition + "/page", {url: url});
      addUrl.value = page.url;
      document.getElementById("add-title").value = page.title;
      document.getElementById("add-summary").value = page.summary;
      const select = document.getElementById("add-section");
      if (page.section) { select.value = page.section; }
      if (select.selectedIndex < 0) { select.selectedIndex = 0; }
      let note = "from " + page.source;
      if (page.stored) { note = "already stored (" + page.source + "): adding makes it a pick"; }
      else if (!page.section) { note += "; choose its section"; }
      document.getElementById("add-note").textContent = note;
      document.getElementById("add-fields").hidden = false;
      addSay(page.error ? "could not read the page: " + page.error + ". Give a title to add it by hand." : "");
      document.getElementById(page.title ? "add-ok" : "add-title").focus();
    } catch (error) {
      addSay(error.message);
    } finally {
      addBusy = false;
    }
  }

  async function savePage() {
    if (addBusy) { return; }
    addBusy = true;
    try {
      const added = await post("/edition/" + edition + "/add", {
        url: addUrl.value.trim(), title: document.getElementById("add-title").value,
        summary: document.getElementById("add-summary").value, section: document.getElementById("add-section").value});
      undoStack.push(added.action);
      remember("added: " + added.title.slice(0, 120) + " under " + added.section.split(" > ").join(" › "), "post-" + added.post);
      location.reload();
    } catch (error) {
      addSay(error.message);
      addBusy = false;
    }
  }

  async function exportDraft() {
    try {
      const done = await post("/edition/" + edition + "/export", {});
      let text = "wrote " + done.path + ": " + done.selected + " entries";
      if (done.undecided) { text += " (" + done.undecided + " of them not yet decided: importing the file would record them as picks)"; }
      document.getElementById("export-summary").textContent = text;
      document.getElementById("export-diff").textContent = done.changed ? done.diff : "no change since the last draft written";
      document.getElementById("export-dialog").showModal();
      say(text);
    } catch (error) {
      say(error.message, true);
    }
  }

  // What a reload after retraining keeps: the filters, the editor's row, and what to tell them.
  function remember(message, row) {
    const filters = {};
    ["filter-text", "filter-source", "filter-section", "filter-state"].forEach((id) => { filters[id] = document.getElementById(id).value; });
    sessionStorage.setItem(memory, JSON.stringify({filters: filters, row: row || (current ? current.id : null), message: message,
                                                   undo: undoStack}));
  }

  async function retrain() {
    try {
      const started = await post("/retrain", {});
      say("retraining…");
      const generation = started.generation;
      const poll = async () => {
        const response = await fetch("/retrain", {credentials: "same-origin"});
        const state = await response.json();
        if (state.running || state.generation === generation) { setTimeout(poll, 300); return; }
        if (state.failed) { say(state.message, true); return; }
        remember(state.message);
        location.reload();
      };
      setTimeout(poll, 300);
    } catch (error) {
      say(error.message, true);
    }
  }

  function applyFilters() {
    const text = document.getElementById("filter-text").value.trim().toLowerCase();
    const source = document.getElementById("filter-source").value;
    const section = document.getElementById("filter-section").value;
    const state = document.getElementById("filter-state").value;
    desk.querySelectorAll(".row").forEach((row) => {
      const where = row.closest(".group").dataset.key;
      const selected = where !== "below" && where !== "left-out";
      let keep = (!source || row.dataset.source === source) && (!section || row.dataset.section === section);
      if (state === "selected") { keep = keep && selected; }
      else if (state === "below") { keep = keep && where === "below"; }
      else if (state) { keep = keep && row.dataset.state === state; }
      if (keep && text) { keep = row.textContent.toLowerCase().includes(text); }
      row.hidden = !keep;
    });
  }

  function restore() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(memory) || "null"); } catch (e) { saved = null; }
    if (saved && saved.filters) {
      Object.entries(saved.filters).forEach(([id, value]) => { const el = document.getElementById(id); if (el) { el.value = value; } });
    }
    applyFilters();
    if (saved && Array.isArray(saved.undo)) { saved.undo.forEach((a) => { if (Number.isInteger(a)) { undoStack.push(a); } }); }
    const wanted = (saved && saved.row) || location.hash.slice(1);
    sessionStorage.removeItem(memory);
    const row = wanted && /^post-\d+$/.test(wanted) ? document.getElementById(wanted) : null;
    focusRow(row || rows()[0]);
    if (saved && typeof saved.message === "string") { say(saved.message); }
  }

  const keys = {
    j: () => step(1), k: () => step(-1),
    a: () => act(current, "accept"), r: () => act(current, "reject"),
    m: () => openMove(current), e: () => openEdit(current), u: () => undo(), n: () => openAdd(),
    "?": () => document.getElementById("help-dialog").showModal(),
    "/": () => document.getElementById("filter-text").focus(),
  };

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (document.querySelector("dialog[open]")) {
      if (target.id === "edit-summary" && event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        document.getElementById("edit-dialog").close("ok");
      } else if (target.id === "add-url" && event.key === "Enter") {
        event.preventDefault();
        fetchPage();
      } else if (target.id === "add-title" && event.key === "Enter") {
        event.preventDefault();
        savePage();
      } else if (target.id === "move-section" && event.key === "Enter") {
        event.preventDefault();
        document.getElementById("move-dialog").close("ok");
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target.matches("input, textarea, select")) {
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    const handler = keys[event.key];
    if (handler) { event.preventDefault(); handler(); }
  });

  desk.addEventListener("click", (event) => {
    const row = event.target.closest(".row");
    if (!row) { return; }
    const button = event.target.closest("button[data-do]");
    if (!button) { if (!event.target.closest("a")) { focusRow(row); } return; }
    focusRow(row);
    const what = button.dataset.do;
    if (what === "move") { openMove(row); } else if (what === "edit") { openEdit(row); } else { act(row, what); }
  });

  document.getElementById("move-section").addEventListener("dblclick", () => document.getElementById("move-dialog").close("ok"));
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("add").addEventListener("click", openAdd);
  document.getElementById("add-fetch").addEventListener("click", fetchPage);
  document.getElementById("add-ok").addEventListener("click", savePage);
  document.getElementById("export").addEventListener("click", exportDraft);
  document.getElementById("retrain").addEventListener("click", retrain);
  document.getElementById("help-button").addEventListener("click", () => document.getElementById("help-dialog").showModal());
  document.getElementById("filters").addEventListener("input", applyFilters);
  document.getElementById("filters").addEventListener("change", applyFilters);
  document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
  restore();
  desk.dataset.ready = "1";
})();
