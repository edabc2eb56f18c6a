// The query box: a plain text box (the cursor goes into the current query, typing refines it,
// Enter searches). Suggestions appear under it while typing and never replace what was typed:
// arrows only highlight one, Enter or a click searches it. The value sent to the page is
// {q, nonce, session}: nonce marks one submission (the page applies each once, so Back/Forward
// can move the URL without an old submission coming back); session is this tab's random token
// (sessionStorage), by which votes and trending count once per browser session.
function SearchBox(root) {
  root.innerHTML = `<form class="sb" role="search" autocomplete="off">
      <input type="search" enterkeyhint="search" spellcheck="false" aria-label="Search the talks" aria-autocomplete="list"
             aria-controls="suggestions">
      <button type="submit" class="go" aria-label="Search">Search</button>
    </form>
    <ul id="suggestions" class="suggest" role="listbox" hidden></ul>`;
  const form = root.querySelector("form"), input = root.querySelector("input"), list = root.querySelector("ul");
  let args = {}, shown = [], active = -1, lastValue = null, sessionSent = false;
  const session = (() => {
    try {
      let k = window.sessionStorage.getItem("chaffee-search-session");
      if (!k) { k = crypto.randomUUID(); window.sessionStorage.setItem("chaffee-search-session", k); }
      return k;
    } catch (e) { return null; }
  })();

  const close = () => { shown = []; active = -1; draw(); };
  const submit = (q) => {
    close();
    input.value = q;
    lastValue = q;
    ST.setValue({ q, nonce: Math.random().toString(36).slice(2), session });
  };
  const matches = (typed) => {
    const t = typed.trim().toLowerCase();
    if (t.length < 2) return [];
    const out = [];
    for (const [text, kind] of args.suggestions || []) {
      const l = text.toLowerCase();
      if (l !== t && (l.startsWith(t) || l.includes(" " + t))) out.push([text, kind]);
      if (out.length >= (args.max_suggestions || 6)) break;
    }
    return out;
  };
  function draw() {
    list.replaceChildren(...shown.map(([text, kind], i) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      li.className = "suggestion" + (i === active ? " active" : "");
      const a = document.createElement("span"); a.textContent = text;
      const b = document.createElement("span"); b.className = "kind"; b.textContent = kind;
      li.append(a, b);
      // mousedown, not click: the box keeps focus, and the choice is searched at once.
      li.addEventListener("mousedown", (e) => { e.preventDefault(); submit(text); });
      return li;
    }));
    list.hidden = shown.length === 0;
    ST.fitHeight();
  }
  input.addEventListener("input", () => { shown = matches(input.value); active = -1; draw(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && shown.length) { active = (active + 1) % shown.length; draw(); e.preventDefault(); }
    else if (e.key === "ArrowUp" && shown.length) { active = (active - 1 + shown.length) % shown.length; draw(); e.preventDefault(); }
    else if (e.key === "Escape") close();
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit(active >= 0 ? shown[active][0] : input.value.trim());
  });

  return (a, theme) => {
    args = a;
    ST.applyTheme(theme);
    input.placeholder = a.placeholder || "";
    if (a.value !== lastValue) {  // a new search from the URL (Back/Forward, a link, a trending pick)
      lastValue = a.value;
      input.value = a.value || "";
    }
    if (session && a.session !== session && !sessionSent) {
      sessionSent = true;  // tell the page once which browser session this is
      ST.setValue({ q: null, nonce: null, session });
    }
    ST.fitHeight();
  };
}
