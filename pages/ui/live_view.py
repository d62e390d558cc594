"""The live charts of a watched run: a component that polls the shared feed and redraws only what changed.

Streamlit would rerun the watching session's script every second to update a chart; with a class of
watchers that costs the server tens of milliseconds per watcher per tick (BENCHMARKS.md "Classroom").
This Custom Component (v2: no iframe) asks ``/lab-live/feed`` (``pages.ui.live_http``) once per second
for the view the server builds once per new data for everyone (``core.runs.live_feed``), and draws it
with plotly.js, the library ``st.plotly_chart`` uses, loaded once per browser from the lab's own server.
When the part of the page around the charts changes (a status, a new checkpoint, an A/B pair's next
evaluation) it asks the page to rerun once.
"""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import streamlit as st

from pages.ui.live_http import PREFIX

CSS = """
.lab-live { display: flex; flex-direction: column; gap: 0.5rem; font-family: inherit; }
.lab-live-run { display: flex; flex-direction: column; gap: 0.25rem; }
.lab-live-text { font-size: 0.875rem; }
.lab-live-bar { height: 0.5rem; border-radius: 0.25rem; background: rgba(151, 166, 195, 0.25); overflow: hidden; }
.lab-live-fill { height: 100%; background: var(--st-primary-color, #ff4b4b); transition: width 0.4s; }
.lab-live-note, .lab-live-error { padding: 0.75rem 1rem; border-radius: 0.5rem; font-size: 0.875rem; }
.lab-live-note { background: rgba(28, 131, 225, 0.1); }
.lab-live-error { background: rgba(255, 43, 43, 0.09); color: #d02020; white-space: pre-wrap; }
.lab-live-caption { font-size: 0.875rem; opacity: 0.65; }
.lab-live-grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1rem; }
@media (max-width: 720px) { .lab-live-grid { grid-template-columns: minmax(0, 1fr); } }
.lab-live-chart { min-height: 240px; }
"""

HTML = """<div class="lab-live" data-testid="lab-live">
<div class="lab-live-runs"></div><div class="lab-live-caption"></div><div class="lab-live-grid"></div></div>"""

# The component's code. Each call (a mount, or new data after a rerun) stops the poller an earlier call
# left on this element, then polls the feed: the server answers {"v", "same": true} while nothing
# changed, else the whole view (progress lines, notes, four plotly figures).
JS = r"""
function loadPlotly(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__labPlotly) {
    window.__labPlotly = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src; s.async = true;
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => { window.__labPlotly = null; reject(new Error('plotly.js did not load')); };
      document.head.appendChild(s);
    });
  }
  return window.__labPlotly;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;  // text, never markup: run names are user text
  return e;
}

function themed(layout, root) {
  const css = getComputedStyle(root);
  const color = (css.getPropertyValue('--st-text-color') || css.color || '#31333f').trim();
  const grid = 'rgba(128, 128, 128, 0.2)';
  const out = Object.assign({}, layout, {
    paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)', autosize: true,
    font: Object.assign({}, layout.font || {}, {color: color, family: css.fontFamily}),
  });
  for (const axis of ['xaxis', 'yaxis']) {
    out[axis] = Object.assign({gridcolor: grid, zerolinecolor: grid, linecolor: grid, automargin: true},
                              layout[axis] || {});
  }
  return out;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector('.lab-live');
  if (!root || !data) return;
  if (root.__labStop) root.__labStop();
  let stopped = false, timer = null, version = '', asked = data.sig;
  root.__labStop = () => { stopped = true; if (timer) clearTimeout(timer); };
  const runsBox = root.querySelector('.lab-live-runs');
  const caption = root.querySelector('.lab-live-caption');
  const grid = root.querySelector('.lab-live-grid');

  function showRuns(p) {
    runsBox.replaceChildren(...p.runs.map((r) => {
      const box = el('div', 'lab-live-run');
      box.dataset.status = r.status;
      box.appendChild(el('div', 'lab-live-text', r.text));
      const bar = el('div', 'lab-live-bar');
      const fill = el('div', 'lab-live-fill');
      fill.style.width = (100 * Math.max(0, Math.min(1, r.fraction))).toFixed(1) + '%';
      bar.appendChild(fill);
      box.appendChild(bar);
      if (r.note) box.appendChild(el('div', 'lab-live-note', r.note));
      if (r.error) box.appendChild(el('div', 'lab-live-error', r.error));
      return box;
    }));
  }

  async function showCharts(p) {
    if (!p.charts) { grid.replaceChildren(); return; }
    const Plotly = await loadPlotly(data.plotly);
    for (const name of ['loss', 'acc', 'lr', 'speed']) {
      let box = grid.querySelector(`[data-chart="${name}"]`);
      if (!box) {
        box = el('div', 'lab-live-chart');
        box.dataset.chart = name;
        grid.appendChild(box);
      }
      const fig = p.charts[name];
      await Plotly.react(box, fig.data, themed(fig.layout, root), {responsive: true, displaylogo: false});
    }
  }

  async function poll() {
    if (stopped) return;
    let again = true;
    try {
      const r = await fetch(data.feed + '&v=' + encodeURIComponent(version), {cache: 'no-store'});
      const p = await r.json();
      if (stopped) return;
      if (!r.ok) {
        caption.textContent = data.failed + ' ' + (p.error || r.status);
      } else if (!p.same) {
        version = p.v;
        showRuns(p);
        caption.textContent = p.waiting || '';
        root.dataset.version = p.v;
        await showCharts(p);
        again = p.active;
        if (p.sig !== asked) { asked = p.sig; setTriggerValue('changed', p.sig); }
      }
    } catch (e) {
      if (!stopped) caption.textContent = data.failed + ' ' + e.message;
    }
    if (!stopped && again) timer = setTimeout(poll, 1000 * (data.every || 1));
  }
  poll();
  return () => root.__labStop && root.__labStop();
}
"""

_COMPONENT = st.components.v2.component("lab_live_charts", html=HTML, css=CSS, js=JS, isolate_styles=False)


def show(lab: str, run_ids: list[str], lang: str, smooth: float, sig: str, failed: str, key: str,
         on_change: Callable[[], None]) -> None:
    """The live view of ``run_ids`` (one run or an A/B pair) from the feed of lab ``lab``; ``sig`` is the
    page signature (``core.runs.live_feed.page_signature``) this page was drawn with; ``failed`` the
    words before a feed error; ``on_change`` runs when the feed's signature moved on (then the page reruns)."""
    query = urlencode({"lab": lab, "runs": ",".join(run_ids), "lang": lang, "smooth": f"{smooth:.2f}"})
    _COMPONENT(key=key, data={"feed": f"{PREFIX}/feed?{query}", "plotly": f"{PREFIX}/plotly.min.js", "sig": sig,
                              "failed": failed, "every": 1.0},
               on_changed_change=on_change, height="content")
