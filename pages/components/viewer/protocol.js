// The Streamlit custom-component protocol (components.v1), in plain JS: no npm build.
// The page sends {type: "streamlit:render", args, theme}; we answer with componentReady,
// setComponentValue and setFrameHeight. Shared by the search box and the player.
window.ST = (function () {
  const send = (type, data) => window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
  let lastHeight = -1;
  return {
    ready: () => send("streamlit:componentReady", { apiVersion: 1 }),
    setValue: (value) => send("streamlit:setComponentValue", { value, dataType: "json" }),
    fitHeight: () => {
      const h = Math.ceil(document.documentElement.getBoundingClientRect().height);
      if (h !== lastHeight) { lastHeight = h; send("streamlit:setFrameHeight", { height: h }); }
    },
    onRender: (fn) => window.addEventListener("message", (e) => {
      if (e.data && e.data.type === "streamlit:render") fn(e.data.args || {}, e.data.theme || {});
    }),
    applyTheme: (theme) => {
      const r = document.documentElement.style, dark = theme.base === "dark";
      r.setProperty("--fg", theme.textColor || (dark ? "#fafafa" : "#31333f"));
      r.setProperty("--bg", theme.backgroundColor || (dark ? "#0e1117" : "#ffffff"));
      r.setProperty("--bg2", theme.secondaryBackgroundColor || (dark ? "#262730" : "#f0f2f6"));
      r.setProperty("--accent", theme.primaryColor || "#b4532a");
      r.setProperty("--font", theme.font || "sans-serif");
      document.documentElement.dataset.theme = dark ? "dark" : "light";
    },
  };
})();
