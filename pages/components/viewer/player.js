// The player with the transcript beside it. YouTube through the iframe API, a local file through
// the HTML <audio>/<video> element; both report their time, so the current line follows playback.
// Clicking a line seeks there. The transcript scrolls inside its own box (scrollTop), never with
// scrollIntoView, which would also scroll the page away from the results.
function Player(root) {
  root.innerHTML = `<div class="pl"><div class="media" id="media"></div>
    <div class="lines" id="lines" role="list" aria-label="Transcript"></div></div>`;
  const mediaBox = root.querySelector("#media"), linesBox = root.querySelector("#lines");
  let lines = [], current = -1, seekTo = () => {}, built = null, timer = null;
  new ResizeObserver(() => ST.fitHeight()).observe(document.body);  // the video's 16:9 box sizes with the width
  // This frame is only as wide as its column: whether the page is a phone's is the page's width.
  const compact = () => {
    let w = window.innerWidth;
    try { w = window.parent.innerWidth; } catch (e) { /* another origin: keep the frame's width */ }
    document.documentElement.classList.toggle("compact", w <= 640);
  };
  compact();
  window.addEventListener("resize", compact);

  const clock = (s) => {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
  };
  const scrollLineIntoBox = (i) => {
    const el = linesBox.children[i];
    if (!el) return;
    const top = el.offsetTop - linesBox.offsetTop;
    if (top < linesBox.scrollTop || top + el.offsetHeight > linesBox.scrollTop + linesBox.clientHeight) {
      linesBox.scrollTop = Math.max(0, top - linesBox.clientHeight / 3);
    }
  };
  function follow(t) {
    let i = -1;
    for (let k = 0; k < lines.length; k++) { if (lines[k][0] <= t + 0.05) i = k; else break; }
    if (i === current) return;
    if (current >= 0 && linesBox.children[current]) linesBox.children[current].classList.remove("current");
    current = i;
    if (i >= 0) { linesBox.children[i].classList.add("current"); scrollLineIntoBox(i); }
  }
  // For the browser tests (and curious viewers): where the transcript follows to.
  window.chaffeePlayer = { currentLine: () => current, seek: (t) => seekTo(t) };

  function youtube(a) {
    mediaBox.className = "media video";
    mediaBox.innerHTML = `<div id="yt"></div>`;
    let player = null;
    const make = () => {
      player = new YT.Player("yt", {
        videoId: a.video_id, width: "100%", height: "100%",
        playerVars: { start: Math.floor(a.start), autoplay: 1, playsinline: 1, rel: 0 },
      });
      timer = setInterval(() => {
        if (player && typeof player.getCurrentTime === "function") follow(player.getCurrentTime() || 0);
      }, 250);
    };
    seekTo = (t) => {
      if (player && player.seekTo) { player.seekTo(t, true); if (player.playVideo) player.playVideo(); }
      else mediaBox.querySelector("iframe").src = embedUrl(a.video_id, t);  // the plain embed below
      follow(t);
    };
    if (window.YT && window.YT.Player) return make();
    window.onYouTubeIframeAPIReady = make;
    const s = document.createElement("script");
    s.src = "https://www.youtube.com/iframe_api";
    document.head.appendChild(s);
    // Without the API (blocked, offline) a plain embed still plays from the second; lines then
    // seek by reloading it, and the current line cannot follow.
    setTimeout(() => {
      if (player) return;
      const f = document.createElement("iframe");
      f.allow = "autoplay; encrypted-media; picture-in-picture"; f.allowFullscreen = true;
      f.title = a.title_attr || "Player"; f.src = embedUrl(a.video_id, a.start);
      mediaBox.replaceChildren(f);
    }, 6000);
  }
  const embedUrl = (id, t) => `https://www.youtube.com/embed/${encodeURIComponent(id)}?start=${Math.floor(t)}&autoplay=1&playsinline=1&rel=0`;

  function element(a) {
    if (!a.src) {  // the file is not on the server: the transcript alone (the page says why)
      mediaBox.className = "media";
      mediaBox.replaceChildren();
      seekTo = follow;
      return;
    }
    const el = document.createElement(a.player);  // "audio" | "video"
    el.controls = true; el.preload = "auto"; el.src = a.src;
    mediaBox.className = "media" + (a.player === "video" ? " video" : "");
    mediaBox.replaceChildren(el);
    el.addEventListener("loadedmetadata", () => { el.currentTime = a.start; el.play().catch(() => {}); }, { once: true });
    el.addEventListener("timeupdate", () => follow(el.currentTime));
    seekTo = (t) => { el.currentTime = t; el.play().catch(() => {}); follow(t); };
  }

  function drawLines(a) {
    lines = a.lines || [];
    current = -1;
    if (!lines.length) {
      linesBox.innerHTML = `<div class="nolines">No transcript lines around this moment.</div>`;
      return;
    }
    linesBox.replaceChildren(...lines.map(([start, end, text, speaker], i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "line" + (i === a.answer ? " answer" : "");
      b.dataset.t = start;
      const t = document.createElement("span"); t.className = "t"; t.textContent = clock(start);
      b.append(t);
      if (speaker) { const w = document.createElement("span"); w.className = "who"; w.textContent = speaker + ":"; b.append(w); }
      const x = document.createElement("span"); x.className = "tx"; x.textContent = text; b.append(x);
      b.title = "Play from " + clock(start);
      b.addEventListener("click", () => seekTo(start));
      return b;
    }));
  }

  return (a, theme) => {
    ST.applyTheme(theme);
    const key = [a.player, a.video_id, a.src, a.start, (a.lines || []).length].join("|");
    if (key !== built) {
      built = key;
      if (timer) clearInterval(timer);
      drawLines(a);
      (a.player === "youtube" ? youtube : element)(a);
      if (a.answer != null) requestAnimationFrame(() => scrollLineIntoBox(a.answer));
    }
    ST.fitHeight();
  };
}
