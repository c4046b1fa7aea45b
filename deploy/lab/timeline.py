"""timeline - samples the lab twice a second and draws one SVG per run:
per till, bars for LAN and uplink cable (plugged green / pulled red),
daemon (alive / killed), forwarder role, and a chart of sales/s (from the
ground truth) and ERP backlog (from the till's status). Lab events (pull,
plug, kill, partition, heal, ...) are drawn as labelled vertical lines.
"""
import html
import threading
import time


class Recorder:
    def __init__(self, lab, interval=0.5):
        self.lab = lab
        self.interval = interval
        self.samples = []          # (t, {till: {...}})
        self.stop_ev = threading.Event()
        self.th = None

    def sample(self):
        row = {}
        for n in self.lab.names:
            st = self.lab.status(n)
            c = getattr(self.lab, "cables", {}).get(n, {"lan": True, "uplink": True})
            row[n] = {"lan": c["lan"], "uplink": c["uplink"], "alive": st is not None,
                      "fwd": bool(st and st["forwarder"].get("is_self")),
                      "backlog": st["erp"]["backlog"] if st else None}
        self.samples.append((time.time(), row))

    def _run(self):
        while not self.stop_ev.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a sample may race a kill or cleanup
                pass
            self.stop_ev.wait(self.interval)

    def start(self):
        self.th = threading.Thread(target=self._run, daemon=True, name="timeline")
        self.th.start()
        return self

    def stop(self):
        self.stop_ev.set()
        if self.th:
            self.th.join(10)
        return self

    def svg(self, path, truth=(), title="tillmesh lab"):
        write_svg(path, self.lab.names, self.samples, truth,
                  getattr(self.lab, "events", []), title)


def write_svg(path, names, samples, truth, events, title):
    if not samples:
        samples = [(time.time(), {})]
    t0, t1 = samples[0][0], max(samples[-1][0], samples[0][0] + 1)
    W, L, R = 1100, 110, 20
    bar_h, chart_h, gap = 10, 50, 24
    band = 4 * (bar_h + 2) + chart_h + gap
    H = 60 + band * len(names) + 30
    x = lambda t: L + (t - t0) / (t1 - t0) * (W - L - R)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="10">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="10" y="18" font-size="14">{html.escape(title)} — '
           f'{time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0))}, '
           f'{t1 - t0:.0f} s</text>',
           '<text x="10" y="34" fill="#555">bars: LAN, uplink (green plugged / red pulled), '
           'daemon (green alive / black killed), forwarder (blue); chart: sales/s (orange), '
           'ERP backlog (purple, own scale)</text>']
    # time axis
    for s in range(0, int(t1 - t0) + 1, max(1, int((t1 - t0) / 20) or 1)):
        xx = x(t0 + s)
        out.append(f'<line x1="{xx:.1f}" y1="44" x2="{xx:.1f}" y2="{H - 25}" stroke="#eee"/>')
        out.append(f'<text x="{xx:.1f}" y="{H - 12}" text-anchor="middle" fill="#777">{s}s</text>')
    for (te, who, what) in events:
        if t0 <= te <= t1:
            xx = x(te)
            out.append(f'<line x1="{xx:.1f}" y1="44" x2="{xx:.1f}" y2="{H - 25}" '
                       f'stroke="#c00" stroke-dasharray="3,3"/>')
            out.append(f'<text x="{xx + 2:.1f}" y="52" fill="#c00" font-size="9" '
                       f'transform="rotate(0)">{html.escape((who + " " if who else "") + what)}</text>')
    # sales per second per till
    rate = {n: {} for n in names}
    for r in truth:
        if r["till"] in rate:
            b = int(r["t"] - t0)
            rate[r["till"]][b] = rate[r["till"]].get(b, 0) + 1
    for i, n in enumerate(names):
        y0 = 62 + i * band
        out.append(f'<text x="10" y="{y0 + 10}" font-size="12" font-weight="bold">{n}</text>')
        rows = [("LAN", "lan", "#3a3", "#d33"), ("uplink", "uplink", "#3a3", "#d33"),
                ("daemon", "alive", "#3a3", "#222"), ("forwarder", "fwd", "#36c", None)]
        for k, (lab, key, on, off) in enumerate(rows):
            yy = y0 + 14 + k * (bar_h + 2)
            out.append(f'<text x="{L - 6}" y="{yy + 8}" text-anchor="end">{lab}</text>')
            for j, (ts, row) in enumerate(samples):
                v = row.get(n)
                if v is None:
                    continue
                te = samples[j + 1][0] if j + 1 < len(samples) else ts + 0.5
                col = on if v[key] else off
                if col:
                    out.append(f'<rect x="{x(ts):.1f}" y="{yy}" width="{max(0.5, x(te) - x(ts)):.1f}" '
                               f'height="{bar_h}" fill="{col}"/>')
        cy = y0 + 14 + 4 * (bar_h + 2) + chart_h
        out.append(f'<line x1="{L}" y1="{cy}" x2="{W - R}" y2="{cy}" stroke="#999"/>')
        rmax = max([1] + list(rate[n].values()))
        pts = " ".join(f"{x(t0 + b + 0.5):.1f},{cy - rate[n].get(b, 0) / rmax * chart_h:.1f}"
                       for b in range(int(t1 - t0) + 1))
        out.append(f'<polyline points="{pts}" fill="none" stroke="#e80" stroke-width="1.2"/>')
        out.append(f'<text x="{L - 6}" y="{cy - chart_h + 8}" text-anchor="end" fill="#e80">'
                   f'{rmax}/s</text>')
        bl = [(ts, row[n]["backlog"]) for ts, row in samples
              if row.get(n) and row[n]["backlog"] is not None]
        bmax = max([1] + [b for _, b in bl])
        pts = " ".join(f"{x(ts):.1f},{cy - b / bmax * chart_h:.1f}" for ts, b in bl)
        out.append(f'<polyline points="{pts}" fill="none" stroke="#83c" stroke-width="1.2"/>')
        out.append(f'<text x="{L - 6}" y="{cy - 2}" text-anchor="end" fill="#83c">'
                   f'backlog≤{bmax}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
