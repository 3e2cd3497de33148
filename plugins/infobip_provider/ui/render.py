"""The Infobip page as HTML: one table per state store, one row per target, an inline SVG chart per row.

Everything shown is escaped. The page loads nothing from outside the api-server: its only script
(``page.js``) lets links to Airflow pages open in Airflow's window rather than inside the iframe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from urllib.parse import quote

from infobip_provider.ui import NAV_LABEL
from infobip_provider.ui.data import SERIES, RejectsFile, Run, Store, Target

#: How many runs the chart of a target draws (the latest ones).
CHART_RUNS = 30
#: How many runs the details of a target list (the latest ones).
LISTED_RUNS = 50

_KIND_LABEL = {"lists": "List", "tags": "Tag", "broadcasts": "Broadcast"}
_COLOURS = ("#2f9e44", "#e03131", "#f08c00")


@dataclass
class Links:
    """Where the page's links point: Airflow's UI root and the page's own root (both absolute paths)."""

    airflow: str
    page: str

    def dag_run(self, run: Run) -> str | None:
        if not run.dag_id or not run.run_id:
            return None
        return f"{self.airflow}/dags/{quote(run.dag_id, safe='')}/runs/{quote(run.run_id, safe='')}"

    def task(self, run: Run) -> str | None:
        base = self.dag_run(run)
        if base is None or not run.task_id:
            return None
        url = f"{base}/tasks/{quote(run.task_id, safe='')}"
        return url + (f"/mapped/{run.map_index}" if run.map_index >= 0 else "")

    def target(self, target: Target) -> str:
        parts = (target.scope, target.kind, target.folder)
        return self.page + "/targets/" + "/".join(quote(p, safe="") for p in parts)

    def rejects(self, target: Target, name: str) -> str:
        parts = (target.store.id, target.scope, target.kind, target.folder, name)
        return self.page + "/rejects/" + "/".join(quote(p, safe="") for p in parts)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "time unknown"


def scope_label(scope: str) -> str:
    """An account host as it is; a key fingerprint (16 hex digits, not the key) said to be one."""
    if len(scope) == 16 and all(c in "0123456789abcdef" for c in scope):
        return f"API key {scope[:8]}…"
    return scope


def series_of(kind: str) -> tuple[str, str, str]:
    return SERIES.get(kind, SERIES["lists"])


def chart(target: Target) -> str:
    """One group of three bars per run (latest :data:`CHART_RUNS`); heights grow with the square root of
    the count, so the runs after a large first backfill still show."""
    runs = target.runs[-CHART_RUNS:]
    if not runs:
        return '<span class="muted">no runs recorded</span>'
    names = series_of(target.kind)
    values = [[run.counts.get(n, 0) for n in names] for run in runs]
    peak = max(max(v) for v in values) or 1
    bar, height, group = 6, 40, 22
    width = group * len(runs)
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height + 2}" '
        f'viewBox="0 0 {width} {height + 2}" aria-label="{_e(", ".join(names))} per run">'
    ]
    for i, (run, counts) in enumerate(zip(runs, values, strict=True)):
        tip = f"{_when(run.finished_at)} · {run.outcome}{' · dry run' if run.dry_run else ''}: " + ", ".join(
            f"{n} {c:,}" for n, c in zip(names, counts, strict=True)
        )
        cls = "run-bars dry" if run.dry_run else "run-bars"
        parts.append(f'<g class="{cls}" data-outcome="{_e(run.outcome)}"><title>{_e(tip)}</title>')
        for j, (count, colour) in enumerate(zip(counts, _COLOURS, strict=True)):
            h = 0 if count <= 0 else max(1, round((count / peak) ** 0.5 * height))
            x = i * group + j * (bar + 1) + 1
            parts.append(f'<rect x="{x}" y="{height - h + 1}" width="{bar}" height="{h}" fill="{colour}"/>')
        parts.append(f'<rect class="base" x="{i * group}" y="{height + 1}" width="{group - 2}" height="1"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    items = []
    for i, colour in enumerate(_COLOURS):
        label = " / ".join(sorted({SERIES[k][i] for k in SERIES}))
        items.append(f'<span class="key"><i style="background:{colour}"></i>{_e(label)}</span>')
    return (
        '<p class="legend">Bars per run: '
        + " ".join(items)
        + " (pale: dry run; heights follow the square root of the count, hover a run for its numbers)</p>"
    )


def _airflow_link(url: str | None, text: str, cls: str) -> str:
    if url is None:
        return _e(text)
    return f'<a class="{cls}" href="{_e(url)}" data-airflow-link>{_e(text)}</a>'


def _outcome(run: Run) -> str:
    dry = ' <span class="badge dry">dry run</span>' if run.dry_run else ""
    return f'<span class="outcome {_e(run.outcome)}">{_e(run.outcome)}</span>{dry}'


def _counts(run: Run) -> str:
    if not run.counts:
        return '<span class="muted">no counts</span>'
    return " · ".join(f"{_e(k)} {v:,}" for k, v in run.counts.items())


def _rejects_link(links: Links, target: Target, file: RejectsFile) -> str:
    return (
        f'<a class="rejects-file" href="{_e(links.rejects(target, file.name))}" download>{_e(file.name)}</a>'
    )


def _facts(target: Target) -> str:
    shown = []
    for key in ("list_id", "tag_id", "bulk_id"):
        if key in target.facts and str(target.facts[key]) != target.name:
            shown.append(f"{key.replace('_', ' ')} {_e(target.facts[key])}")
    return f'<div class="facts muted">{" · ".join(shown)}</div>' if shown else ""


def _account(target: Target) -> str:
    conns = target.store.scopes.get(target.scope, [])
    via = f'<div class="muted">{_e(", ".join(conns))}</div>' if conns else ""
    return f'<span title="{_e(target.scope)}">{_e(scope_label(target.scope))}</span>{via}'


def _last_run(links: Links, run: Run | None) -> str:
    if run is None:
        return '<span class="muted">no runs recorded</span>'
    label = f"{run.dag_id} / {run.run_id}" if run.dag_id and run.run_id else "DAG run unknown"
    return f"{_outcome(run)} <span class='when'>{_e(_when(run.finished_at))}</span><br>" + _airflow_link(
        links.dag_run(run), label, "dag-run"
    )


def _rejects_cell(links: Links, target: Target) -> str:
    if not target.rejects:
        return '<span class="muted">none</span>'
    order = {id(run): i for i, run in enumerate(target.runs)}
    latest = max(target.rejects, key=lambda f: (order.get(id(f.run), -1), f.name))
    more = f'<div class="muted">{len(target.rejects)} files</div>' if len(target.rejects) > 1 else ""
    return _rejects_link(links, target, latest) + more


def _run_rows(links: Links, target: Target, unfolded: bool) -> str:
    by_run: dict[int, list[RejectsFile]] = {}
    orphans = []
    for file in target.rejects:
        if file.run is None:
            orphans.append(file)
        else:
            by_run.setdefault(id(file.run), []).append(file)
    rows = []
    for run in reversed(target.runs[-LISTED_RUNS:]):
        files = " ".join(_rejects_link(links, target, f) for f in by_run.get(id(run), []))
        portal = (
            f' <a class="portal" href="{_e(run.link)}" rel="noopener noreferrer" target="_blank" '
            "data-external-link>Infobip</a>"
            if run.link
            else ""
        )
        rows.append(
            '<tr class="run">'
            f"<td>{_e(_when(run.finished_at))}</td><td>{_outcome(run)}</td>"
            f"<td>{_counts(run)}</td><td class='num'>{_number(run.size)}</td>"
            f"<td>{_airflow_link(links.dag_run(run), run.run_id or '–', 'dag-run')}"
            f"{' · ' + _airflow_link(links.task(run), run.task_id or '', 'task') if links.task(run) else ''}"
            f"{portal}</td><td>{files}</td></tr>"
        )
    if orphans:
        files = " ".join(_rejects_link(links, target, f) for f in orphans)
        rows.append(
            f'<tr class="run orphan"><td colspan="5" class="muted">earlier runs</td><td>{files}</td></tr>'
        )
    if not rows:
        return ""
    head = "<tr><th>Finished</th><th>Outcome</th><th>Counts</th><th>Size</th><th>DAG run</th><th>Rejects</th></tr>"
    return (
        f"<details{' open' if unfolded else ''}><summary>{len(target.runs)} run{'s' if len(target.runs) != 1 else ''}</summary>"
        f'<table class="run-list"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></details>'
    )


def _target_rows(links: Links, target: Target, single: bool) -> str:
    attrs = (
        f'data-kind="{_e(target.kind)}" data-name="{_e(target.name)}" data-scope="{_e(target.scope)}" '
        f'data-folder="{_e(target.folder)}"'
    )
    return (
        f'<tr class="target" {attrs}>'
        f'<td class="kind">{_KIND_LABEL.get(target.kind, _e(target.kind))}</td>'
        f'<td class="name"><a class="target-page" href="{_e(links.target(target))}">'
        f"<strong>{_e(target.name)}</strong></a>{_facts(target)}</td>"
        f'<td class="account">{_account(target)}</td>'
        f'<td class="size num">{_number(target.size)}</td>'
        f'<td class="last-run">{_last_run(links, target.last_run)}</td>'
        f'<td class="chart-cell">{chart(target)}</td>'
        f'<td class="rejects">{_rejects_cell(links, target)}</td>'
        "</tr>"
        f'<tr class="target-runs" {attrs}><td></td><td colspan="6">{_run_rows(links, target, single)}</td></tr>'
    )


def _store_section(links: Links, store: Store, targets: Sequence[Target], single: bool) -> str:
    if store.label_override:
        conns = ""
    elif store.connections:
        conns = (
            "Written by the connections "
            + ", ".join(f"<code>{_e(c)}</code>" for c in store.connections)
            + "."
        )
    else:
        conns = "Airflow's default state folder (no infobip connection names a state_uri)."
    error = (
        f'<p class="error">This state store could not be read ({_e(store.error)}); see the api-server log.</p>'
        if store.error
        else ""
    )
    if targets:
        head = (
            "<tr><th>Kind</th><th>Name</th><th>Account</th><th>Size</th><th>Last run</th>"
            "<th>Per run</th><th>Rejects</th></tr>"
        )
        body = "".join(_target_rows(links, t, single) for t in targets)
        table = f'<table class="targets"><thead>{head}</thead><tbody>{body}</tbody></table>'
    else:
        table = '<p class="muted empty">No list, tag or broadcast has been synced into this store yet.</p>'
    return (
        f'<section class="store" data-store="{_e(store.id)}">'
        f"<h2>State store <code>{_e(store.label)}</code></h2>"
        f'<p class="muted">{conns}</p>{error}{table}</section>'
    )


_STYLE = """
:root { color-scheme: light dark; --fg:#1a1b1e; --muted:#6b7280; --line:#e5e7eb; --bg:#fff; --head:#f8f9fa; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e5e7eb; --muted:#9ca3af; --line:#374151; --bg:#111827; --head:#1f2937; }
}
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); margin: 16px 20px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 2px; }
code { font-size: 13px; } .muted { color: var(--muted); } .error { color: #e03131; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; background: var(--head); }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr.target-runs td { border-bottom: 2px solid var(--line); padding-top: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.outcome { font-weight: 600; } .outcome.success { color: #2f9e44; } .outcome.failed { color: #e03131; }
.badge { font-size: 11px; border: 1px solid var(--muted); border-radius: 8px; padding: 0 5px; }
.chart rect { shape-rendering: crispEdges; } .chart rect.base { fill: var(--line); }
.chart g.dry rect { opacity: .35; }
.legend .key { margin-right: 10px; white-space: nowrap; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
details summary { cursor: pointer; color: var(--muted); }
table.run-list { width: auto; margin: 4px 0 8px; } table.run-list th, table.run-list td { font-size: 13px; }
a { color: #1c7ed6; }
"""


def page(stores: Sequence[Store], targets: Sequence[Target], links: Links, *, single: bool = False) -> str:
    """The whole page; ``single``: one target's view, its runs unfolded, with a way back to all."""
    sections = "".join(
        _store_section(links, store, [t for t in targets if t.store is store], single) for store in stores
    )
    total = len(targets)
    if single:
        intro = f'<p><a class="all" href="{_e(links.page)}/">All lists, tags and broadcasts</a></p>'
    else:
        intro = (
            f'<p class="muted">{total} target{"s" if total != 1 else ""} (lists, tags, broadcasts) in '
            f"{len(stores)} state store{'s' if len(stores) != 1 else ''}. Sizes are the members Infobip "
            "confirmed after the last run; rejects files hold the rows a run could not use.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(NAV_LABEL)}</title>'
        f"<style>{_STYLE}</style>"
        f'<script src="{_e(links.page)}/page.js" defer></script></head><body>'
        f"<h1>{_e(NAV_LABEL)}</h1>"
        f"{intro}"
        f"{_legend()}<main>{sections}</main></body></html>"
    )


#: Links to Airflow pages open in Airflow's own window: the page lives in an iframe whose sandbox lets
#: it neither navigate the top window nor open a tab, but it is same-origin, so it tells Airflow's
#: router where to go, and asks Airflow's window to open the Infobip portal.
SCRIPT = """
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[data-airflow-link], a[data-external-link]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
      event.shiftKey || event.altKey) { return; }
  try {
    var top = window.top;
    if (top === window || top.location.origin !== window.location.origin) { return; }
    if (link.hasAttribute("data-external-link")) {
      top.open(link.href, "_blank", "noopener,noreferrer");
    } else {
      var state = top.history.state || {};
      var next = { usr: null, key: Math.random().toString(36).slice(2, 10), idx: (state.idx || 0) + 1 };
      top.history.pushState(next, "", link.getAttribute("href"));
      top.dispatchEvent(new PopStateEvent("popstate", { state: next }));
    }
    event.preventDefault();
  } catch (error) { /* not framed by Airflow: the link opens as links do */ }
});
"""

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" color="#f08c00">'
    '<path d="M4 19V9M10 19V5M16 19v-7M22 19H2"/></svg>'
)
