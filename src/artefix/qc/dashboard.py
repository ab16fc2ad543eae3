"""``index.html`` of ``artefix qc``: one self-contained page (inline CSS, JavaScript, SVG and base64 PNG; no network).

The page holds a histogram of each artefact score and of the estimated SNR over the checked scans (the
threshold drawn in), and the table of ``qc.csv`` with each scan's worst slices as thumbnails. The table is plain
HTML, readable without JavaScript; the inline script adds sorting (click a column header) and filtering (text
in the path, flagged scans only, one artefact, failed scans only), kept in the address's fragment so that a
view can be bookmarked or shared: ``index.html#flagged=1&artefact=motion&sort=motion:desc`` (keys ``q``,
``flagged``, ``failed``, ``artefact``, ``sort=COLUMN:asc|desc`` with COLUMN a ``qc.csv`` column shown).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from artefix.atomic import atomic_file
from artefix.qc.measure import HEADS, SCAN_PERCENTILE

THUMBNAIL_PIXELS = 96
"""Longer side of a thumbnail, in pixels."""


def thumbnail_png(image: np.ndarray, size: int = THUMBNAIL_PIXELS) -> str:
    """A grey-scale thumbnail of a slice as a base64 PNG (matplotlib), windowed to its 0.5-99.5th percentiles.

    Args:
        image: Slice ``(H, W)``, any real values.
        size: Longer side in pixels (the image is box-averaged down when larger; never enlarged).

    Returns:
        The PNG file, base64-encoded (ASCII).
    """
    from matplotlib.image import imsave
    from PIL import Image

    arr = np.asarray(image, dtype=np.float32)
    h, w = arr.shape
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        shape = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = np.asarray(Image.fromarray(arr, mode="F").resize(shape, Image.Resampling.BOX))
    lo, hi = (float(v) for v in np.percentile(arr, [0.5, 99.5]))
    if not hi > lo:
        lo, hi = float(arr.min()), float(arr.max()) + 1e-6
    buffer = io.BytesIO()
    imsave(buffer, arr, cmap="gray", vmin=lo, vmax=hi, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def histogram_svg(
    values: Sequence[float], lo: float, hi: float, *, bins: int = 20, marker: float | None = None, label: str = ""
) -> str:
    """An inline SVG bar histogram of ``values`` over ``[lo, hi]`` (values outside are clipped to the ends).

    Args:
        values: Finite numbers.
        lo: Left edge.
        hi: Right edge (> ``lo``).
        bins: Number of bars.
        marker: Where to draw a dashed vertical line (the threshold), or None.
        label: Accessible name of the figure.
    """
    width, height, pad = 260, 110, 18
    counts, _ = np.histogram(np.clip(np.asarray(values, dtype=float), lo, hi), bins=bins, range=(lo, hi))
    top = max(1, int(counts.max()) if counts.size else 1)
    bar = (width - 2 * pad) / bins
    parts = [
        f'<svg class="hist" role="img" aria-label="{html.escape(label)}" viewBox="0 0 {width} {height + 16}" '
        f'width="{width}" height="{height + 16}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, count in enumerate(counts):
        h = (height - pad) * count / top
        parts.append(
            f'<rect x="{pad + i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}">'
            f"<title>{lo + i * (hi - lo) / bins:.3g}-{lo + (i + 1) * (hi - lo) / bins:.3g}: {count}</title></rect>"
        )
    parts.append(f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" class="axis"/>')
    if marker is not None and lo <= marker <= hi:
        x = pad + (marker - lo) / (hi - lo) * (width - 2 * pad)
        parts.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height}" class="marker"/>')
    parts.append(f'<text x="{pad}" y="{height + 13}">{lo:g}</text>')
    parts.append(f'<text x="{width - pad}" y="{height + 13}" text-anchor="end">{hi:g}</text>')
    parts.append(f'<text x="{width - pad}" y="12" text-anchor="end">max {top}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}
.meta{color:#555;font-size:.9em;margin:.2em 0}
.hists{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}
.hists figure{margin:0}.hists figcaption{font-size:.85em;text-align:center}
.hist rect{fill:#4a78b0}.hist .axis{stroke:#888}.hist .marker{stroke:#c0392b;stroke-dasharray:4 3;stroke-width:2}
.hist text{font-size:10px;fill:#555}
.controls{display:flex;flex-wrap:wrap;gap:1em;align-items:center;margin:.8em 0}
table{border-collapse:collapse;font-size:.85em}
th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:middle}
th[data-type]{cursor:pointer;user-select:none;background:#f3f3f3;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.flag{font-weight:bold;outline:2px solid #c0392b;outline-offset:-2px}
td.path{max-width:32em;word-break:break-all}
tr.failed td{background:#fbeaea}
.thumbs{display:flex;gap:4px}.thumbs figure{margin:0;text-align:center;font-size:.75em;color:#555}
.thumbs img{display:block;image-rendering:pixelated;max-height:96px;transition:transform .15s}
.thumbs img:hover{transform:scale(2.5);position:relative;z-index:2;box-shadow:0 0 6px #0008}
"""

_JS = """
(function(){
  var table=document.getElementById('qc'), body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
  var text=document.getElementById('filter'), flagged=document.getElementById('only-flagged'),
      failed=document.getElementById('only-failed'), artefact=document.getElementById('artefact'),
      count=document.getElementById('count'), heads=table.tHead.rows[0].cells, sorted='';
  function remember(){
    var p=[];
    if(text.value){p.push('q='+encodeURIComponent(text.value));}
    if(flagged.checked){p.push('flagged=1');}
    if(failed.checked){p.push('failed=1');}
    if(artefact.value){p.push('artefact='+encodeURIComponent(artefact.value));}
    if(sorted){p.push('sort='+sorted);}
    try{history.replaceState(null,'','#'+p.join('&'));}catch(e){}
  }
  function apply(){
    var q=text.value.toLowerCase(), n=0;
    rows.forEach(function(r){
      var ok=(!q||r.getAttribute('data-path').toLowerCase().indexOf(q)>=0)
        &&(!flagged.checked||r.getAttribute('data-flagged')==='1')
        &&(!failed.checked||r.getAttribute('data-failed')==='1')
        &&(!artefact.value||(' '+r.getAttribute('data-flags')+' ').indexOf(' '+artefact.value+' ')>=0);
      r.hidden=!ok; if(ok){n++;}
    });
    count.textContent=n+' of '+rows.length+' scans shown';
  }
  function sortBy(th,asc){
    var col=th.cellIndex, num=th.getAttribute('data-type')==='num';
    Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    sorted=th.getAttribute('data-key')+':'+(asc?'asc':'desc');
    function key(r){var v=r.cells[col].getAttribute('data-v'); return v===null?r.cells[col].textContent:v;}
    rows.sort(function(a,b){
      var x=key(a), y=key(b);
      if(num){
        var ex=(x===''), ey=(y==='');
        if(ex||ey){return ex===ey?0:(ex?1:-1);}
        x=parseFloat(x); y=parseFloat(y);
        return asc?x-y:y-x;
      }
      return asc?x.localeCompare(y):y.localeCompare(x);
    });
    rows.forEach(function(r){body.appendChild(r);});
  }
  [text,flagged,failed,artefact].forEach(function(el){
    el.addEventListener('input',function(){apply();remember();});
    el.addEventListener('change',function(){apply();remember();});
  });
  Array.prototype.forEach.call(heads,function(th){
    if(!th.hasAttribute('data-type')){return;}
    th.addEventListener('click',function(){sortBy(th,th.getAttribute('aria-sort')!=='ascending');remember();});
  });
  location.hash.replace(/^#/,'').split('&').forEach(function(item){
    var kv=item.split('='), k=kv[0], v=decodeURIComponent(kv.slice(1).join('='));
    if(k==='q'){text.value=v;}
    else if(k==='flagged'){flagged.checked=v==='1';}
    else if(k==='failed'){failed.checked=v==='1';}
    else if(k==='artefact'){artefact.value=v;}
    else if(k==='sort'){
      var parts=v.split(':');
      Array.prototype.forEach.call(heads,function(th){
        if(th.getAttribute('data-key')===parts[0]&&th.hasAttribute('data-type')){sortBy(th,parts[1]!=='desc');}
      });
    }
  });
  apply();
})();
"""


def _num(value: Any, digits: int = 2) -> tuple[str, str]:
    """``(data-v, text)`` of a number cell ("" for a missing value)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "", ""
    return f"{float(value):.6g}", f"{float(value):.{digits}f}"


def _score_style(value: Any) -> str:
    if value is None:
        return ""
    alpha = min(max(float(value), 0.0), 1.0) * 0.55
    return f' style="background:rgba(214,69,65,{alpha:.2f})"'


def _row_html(row: Mapping[str, Any], thumbs: Mapping[int, str]) -> str:
    esc = html.escape
    flags = row.get("flags") or ""
    failed = bool(row.get("error"))
    attrs = (
        f' data-path="{esc(str(row["path"]))}" data-flagged="{1 if row.get("flagged") else 0}"'
        f' data-failed="{1 if failed else 0}" data-flags="{esc(flags.replace(";", " "))}"'
    )
    cells = [
        f'<td class="path" data-v="{esc(str(row["path"]))}">{esc(str(row["path"]))}'
        + (f"<br><small>series {esc(str(row['series']))}</small>" if row.get("series") else "")
        + "</td>"
    ]
    for head in HEADS:
        v, text = _num(row.get(head))
        flag = " flag" if row.get(f"{head}_flag") else ""
        cells.append(f'<td class="num{flag}" data-v="{v}"{_score_style(row.get(head))}>{text}</td>')
    v, text = _num(row.get("snr_db"), 1)
    gate = row.get("gate_snr_db")
    gate_title = "" if gate is None else f' title="the noise gate read {gate:.1f} dB"'
    cells.append(f'<td class="num" data-v="{v}"{gate_title}>{text}</td>')
    v, text = _num(row.get("acceleration"), 2)
    rows_cols = ""
    if row.get("kspace_rows") is not None:
        rows_cols = f' title="rows {row["kspace_rows"]:.0%}, columns {row["kspace_cols"]:.0%} measured"'
    cells.append(f'<td class="num" data-v="{v}"{rows_cols}>{text}</td>')
    cells.append(f'<td data-v="{esc(flags)}">{esc(flags.replace(";", ", "))}</td>')
    figures = "".join(
        f'<figure><img alt="slice {z}" src="data:image/png;base64,{b64}"><figcaption>{z}</figcaption></figure>'
        for z, b64 in thumbs.items()
    )
    cells.append(f'<td><div class="thumbs">{figures}</div></td>')
    v, text = _num(row.get("slices"), 0)
    cells.append(f'<td class="num" data-v="{v}">{text}</td>')
    cells.append(f'<td data-v="{esc(str(row.get("error") or ""))}">{esc(str(row.get("error") or ""))}</td>')
    return f"<tr{' class=failed' if failed else ''}{attrs}>{''.join(cells)}</tr>"


def render_dashboard(
    rows: Sequence[Mapping[str, Any]],
    thumbnails: Sequence[Mapping[int, str]],
    thresholds: Mapping[str, float],
    meta: Mapping[str, Any] | None = None,
) -> str:
    """The dashboard's HTML.

    Args:
        rows: ``qc.csv`` rows (:func:`artefix.qc.table.scan_row`).
        thumbnails: Per row, slice index -> base64 PNG of its worst slices (worst first).
        thresholds: Artefact -> flag threshold.
        meta: ``model`` (name), ``sha256``, ``version`` and other facts shown in the header.

    Returns:
        The HTML text.
    """
    esc = html.escape
    meta = dict(meta or {})
    checked = [r for r in rows if not r.get("error")]
    n_failed = len(rows) - len(checked)
    n_flagged = sum(1 for r in checked if r.get("flagged"))
    hists = []
    for head in HEADS:
        values = [float(r[head]) for r in checked if r.get(head) is not None]
        flagged = sum(1 for r in checked if r.get(f"{head}_flag"))
        hists.append(
            f"<figure>{histogram_svg(values, 0.0, 1.0, marker=thresholds[head], label=f'{head} scores')}"
            f"<figcaption>{esc(head)}: {len(values)} scans, {flagged} flagged (&ge; {thresholds[head]:g})"
            "</figcaption></figure>"
        )
    snrs = [float(r["snr_db"]) for r in checked if r.get("snr_db") is not None]
    if snrs:
        lo, hi = math.floor(min(snrs)), math.ceil(max(snrs))
        hi = hi if hi > lo else lo + 1
        hists.append(
            f"<figure>{histogram_svg(snrs, lo, hi, label='estimated SNR')}"
            f"<figcaption>estimated SNR (dB): {len(snrs)} scans</figcaption></figure>"
        )
    options = "".join(f'<option value="{h}">{h}</option>' for h in HEADS)
    header = (
        '<tr><th data-key="path" data-type="text">path</th>'
        + "".join(f'<th data-key="{h}" data-type="num">{h}</th>' for h in HEADS)
        + '<th data-key="snr_db" data-type="num" title="estimated SNR of the noise, dB (hover a value: what the '
        'noise gate read)">SNR dB</th>'
        + '<th data-key="acceleration" data-type="num" title="1 / sqrt(fraction of k-space rows x columns '
        'measured)">accel.</th>'
        + '<th data-key="flags" data-type="text">flags</th><th>worst slices</th>'
        + '<th data-key="slices" data-type="num">slices</th><th data-key="error" data-type="text">error</th></tr>'
    )
    body = "\n".join(_row_html(r, t) for r, t in zip(rows, thumbnails, strict=True))
    when = meta.pop("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    facts = " &middot; ".join(f"{esc(str(k))}: {esc(str(v))}" for k, v in meta.items() if v not in (None, ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>artefix QC: {len(rows)} scans</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>artefix QC</h1>
<p class="meta">{len(rows)} scans: {len(checked)} checked, <b>{n_flagged} flagged</b>, {n_failed} failed
&middot; {esc(when)}</p>
<p class="meta">{facts}</p>
<p class="meta">Scores in [0, 1] (higher = more of that artefact's correction would be applied by
<code>artefix correct</code>): the {SCAN_PERCENTILE:g}th percentile over the slices holding anatomy; a scan is
flagged when a score reaches its threshold (dashed line). SNR: the noise gate's SNR in dB. accel.: k-space
acceleration measured (1: fully sampled). Thumbnails: the worst slices, worst first.</p>
<div class="hists">{"".join(hists)}</div>
<div class="controls">
<label>path contains <input id="filter" type="search" placeholder="filter"></label>
<label><input id="only-flagged" type="checkbox"> flagged only</label>
<label>artefact <select id="artefact"><option value="">any</option>{options}</select></label>
<label><input id="only-failed" type="checkbox"> failed only</label>
<span id="count">{len(rows)} scans</span>
</div>
<table id="qc"><thead>{header}</thead>
<tbody>
{body}
</tbody></table>
<script>{_JS}</script>
</body></html>
"""


def write_dashboard(path: Path, text: str) -> None:
    """Write the dashboard's HTML atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
