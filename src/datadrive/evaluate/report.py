"""The evaluation report: one HTML page with the numbers and the plots that explain them.

It shows the metric table (with the metric implementation's version),
loss curves of the run(s), bars of the headline metrics per event type (per
source when no mining events were given), a comparison table with bootstrap
intervals and flagged regressions, and example forecasts drawn on the map
in the target's frame. Plots are PNGs beside ``index.html`` (matplotlib,
the ``[viz]`` extra).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.evaluate.runner import Comparison, EvaluationResult

__all__ = ["write_report"]

_BARS = ("minADE_6", "minFDE_6", "MR_6", "brier-minFDE_6")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _loss_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], path: Path) -> Path | None:
    if not any(histories.values()):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for run, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            ys = [h.get(key, np.nan) for h in hist]
            if any(np.isfinite(y) for y in ys):
                ax.plot(ep, ys, style, marker="o", ms=3, label=f"{run} {key.split('_')[0]}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cuts(result: EvaluationResult) -> tuple[str, dict[str, dict[str, float]]]:
    if result.by_event:
        return "event type", result.by_event
    sources = [k.split("/")[1] if k.count("/") >= 2 else "?" for k in result.sample_keys]
    out: dict[str, dict[str, float]] = {}
    for src in sorted(set(sources)):
        mask = np.array([s == src for s in sources])
        out[src] = {
            m: float(np.nanmean(v[mask])) if np.any(~np.isnan(v[mask])) else float("nan")
            for m, v in result.per_sample.items()
        } | {"count": float(mask.sum())}
    return "source (no mining events given)", out


def _bars(results: Sequence[EvaluationResult], path: Path) -> tuple[Path, str]:
    plt = _plt()
    label, _ = _cuts(results[0])
    groups = sorted({g for r in results for g in _cuts(r)[1]} | {"all"})
    fig, axes = plt.subplots(1, len(_BARS), figsize=(3.2 * len(_BARS), 3.4))
    width = 0.8 / max(1, len(results))
    for ax, metric in zip(axes, _BARS, strict=True):
        for j, r in enumerate(results):
            cuts = _cuts(r)[1] | {"all": r.overall}
            ys = [cuts.get(g, {}).get(metric, np.nan) for g in groups]
            ax.bar(np.arange(len(groups)) + j * width, ys, width, label=r.run)
        ax.set_xticks(np.arange(len(groups)) + width * (len(results) - 1) / 2)
        ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"metrics per {label}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, label


def _examples(result: EvaluationResult, folder: Path) -> list[Path]:
    plt = _plt()
    out = []
    for i, ex in enumerate(result.examples):
        fig, ax = plt.subplots(figsize=(4.2, 4.2))
        for seg in ex["map_xy"]:
            s = np.asarray(seg)
            ax.plot(s[:, 0], s[:, 1], color="0.8", lw=0.8, zorder=1)
        for a, (xy, valid) in enumerate(zip(ex["agents_xy"], ex["agents_valid"], strict=True)):
            p = np.asarray(xy)[np.asarray(valid, dtype=bool)]
            if p.size:
                ax.plot(
                    p[:, 0],
                    p[:, 1],
                    color="tab:red" if a == 0 else "tab:blue",
                    lw=1.5 if a == 0 else 0.8,
                    zorder=3,
                )
        fut = np.asarray(ex["future_xy"])
        ax.plot(fut[:, 0], fut[:, 1], color="black", lw=1.6, ls="--", label="truth", zorder=4)
        probs = np.asarray(ex["probabilities"])
        for k, traj in enumerate(ex["forecast_xy"]):
            t = np.asarray(traj)
            ax.plot(
                t[:, 0],
                t[:, 1],
                color="tab:green",
                alpha=0.3 + 0.7 * float(probs[k] / probs.max()),
                lw=1.2,
                zorder=5,
            )
        ax.set_aspect("equal")
        lim = max(
            20.0, float(np.abs(np.concatenate([fut, np.asarray(ex["forecast_xy"]).reshape(-1, 2)])).max()) + 5
        )
        ax.set_xlim(-lim * 0.4, lim)
        ax.set_ylim(-lim * 0.7, lim * 0.7)
        ax.set_title(ex.get("key", "")[-60:], fontsize=6)
        ax.legend(fontsize=6, loc="lower right")
        fig.tight_layout()
        p = folder / f"example_{i}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        out.append(p)
    return out


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"


def write_report(
    out: Path,
    results: Sequence[EvaluationResult],
    *,
    histories: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
    comparison: Comparison | None = None,
    title: str = "datadrive evaluation",
) -> Path:
    """Write ``out/index.html`` (and its PNGs) for one or more results of the same split.

    Returns:
        The path of ``index.html``.
    """
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}"
        "table{border-collapse:collapse;font-size:12px;margin:0.6em 0}td,th{border:1px solid #ccc;"
        "padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        ".bad{background:#fdd}.good{background:#dfd}img{max-width:100%;border:1px solid #eee}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    r0 = results[0]
    parts.append(
        f"<p>Dataset <b>{e(r0.dataset)}</b>, split <b>{e(r0.split)}</b>. Metrics: <code>{e(r0.metrics_version)}</code> "
        "(Argoverse 2 minADE/minFDE/miss rate at 2 m/brier-minFDE for K=1 and K=6; Waymo Open Motion minADE/minFDE/"
        "velocity-scaled miss rate; definitions in docs/evaluation.md).</p>"
    )
    metric_names = list(r0.overall)
    head = "".join(f"<th>{e(m)}</th>" for m in metric_names)
    rows = "".join(
        f"<tr><td>{e(r.run)}</td><td>{r.info.get('samples')}</td><td>{r.info.get('av2_scored')}</td>"
        + "".join(f"<td>{_fmt(r.overall.get(m, float('nan')))}</td>" for m in metric_names)
        + "</tr>"
        for r in results
    )
    parts.append(
        f"<h2>Overall</h2><table><tr><th>run</th><th>samples</th><th>AV2-scored</th>{head}</tr>{rows}</table>"
    )
    if comparison is not None:
        parts.append(
            f"<h2>{e(comparison.b)} against {e(comparison.a)}</h2><p>Paired bootstrap over the samples both scored, "
            f"{comparison.resamples} resamples, {comparison.confidence:.0%} intervals of b − a (lower is better for "
            "every metric): red rows are regressions, green rows improvements.</p>"
        )
        trs = []
        for scope, ds in [("all", comparison.overall), *comparison.by_event.items()]:
            for d in ds:
                cls = "bad" if d.regression else "good" if d.improvement else ""
                trs.append(
                    f"<tr class='{cls}'><td>{e(scope)}</td><td>{e(d.metric)}</td><td>{d.samples}</td><td>{_fmt(d.a)}</td>"
                    f"<td>{_fmt(d.b)}</td><td>{_fmt(d.delta)}</td><td>[{_fmt(d.low)}, {_fmt(d.high)}]</td></tr>"
                )
        parts.append(
            "<table><tr><th>cut</th><th>metric</th><th>samples</th><th>a</th><th>b</th><th>b − a</th>"
            f"<th>interval</th></tr>{''.join(trs)}</table>"
        )
    loss = _loss_curves(histories or {}, out / "loss.png")
    if loss is not None:
        parts.append(f"<h2>Training</h2><img src='{loss.name}' alt='loss curves'>")
    bars, label = _bars(results, out / "metrics_by_cut.png")
    parts.append(f"<h2>Per {e(label)}</h2><img src='{bars.name}' alt='metric bars'>")
    label, cuts = _cuts(r0)
    if cuts:
        names = [
            m
            for m in ("minADE_6", "minFDE_6", "MR_6", "brier-minFDE_6", "minADE_1", "minFDE_1")
            if m in r0.overall
        ]
        cut_rows = "".join(
            f"<tr><td>{e(g)}</td><td>{int(v.get('count', 0))}</td>"
            + "".join(f"<td>{_fmt(v.get(m, float('nan')))}</td>" for m in names)
            + "</tr>"
            for g, v in cuts.items()
        )
        parts.append(
            f"<table><tr><th>{e(label)}</th><th>samples</th>{''.join(f'<th>{e(m)}</th>' for m in names)}</tr>{cut_rows}</table>"
        )
    pngs = _examples(r0, out)
    if pngs:
        parts.append(
            f"<h2>Example forecasts ({e(r0.run)})</h2><p>Target frame (target at the origin heading +x): map segments "
            "grey, the target's history red, other agents blue, the true future dashed, the forecasts green (darker = "
            "more probable).</p>"
        )
        parts += [f"<img src='{p.name}' alt='example' style='max-width:32%'>" for p in pngs]
    parts.append("</body></html>")
    index = out / "index.html"
    index.write_text("\n".join(parts))
    return index
