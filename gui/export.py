"""Export: the recommendations and the sequence as CSV or JSON (the recommendations in the
format of `msm4sr recommend --format csv|json`), the attention maps as PNG, SVG or CSV,
the training curves as PNG or CSV, and the item map as PNG.

`install_export(window, menu)` adds File › Export and the same actions to right-click
menus: the recommendations list, and every pyqtgraph view (attention, training plots,
item map) next to pyqtgraph's own "Export…". The write_* functions take the panel and a
path, so they are what tests and scripts call."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from core.cli_recommend import render


def _rows(session, results) -> list[dict]:
    ws = session.ws
    return [{"rank": r, "item": i, "title": (it.title if ws is not None and (it := ws.item(i)) else ""),
             "score": round(float(s), 5)} for r, (i, s) in enumerate(results, 1)]


def write_recommendations(panel, path, fmt: str | None = None) -> Path:
    """The recommendations on screen, as `msm4sr recommend` writes them (fmt from the suffix)."""
    path = Path(path)
    fmt = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    s = panel.session
    meta = {"sequence": list(s.sequence), "k": panel.k_spin.value(),
            "exclude_history": panel.hide_seen.isChecked(),
            "model": str(s.model_path) if s.model_path else None}
    path.write_text(render(_rows(s, panel.results), fmt, meta), encoding="utf-8")
    return path


def write_sequence(session, path, fmt: str | None = None) -> Path:
    """The sequence, oldest first: CSV position,item_id,title or JSON {"sequence": [...]}."""
    path = Path(path)
    fmt = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    ws = session.ws
    rows = [{"position": n, "item_id": i, "title": (it.title if ws is not None and (it := ws.item(i)) else "")}
            for n, i in enumerate(session.sequence, 1)]
    if fmt == "json":
        path.write_text(json.dumps({"sequence": list(session.sequence), "items": rows}, indent=1),
                        encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["position", "item_id", "title"])
            w.writeheader()
            w.writerows(rows)
    return path


def _svg_by_qt(view, path: Path) -> None:
    """The view painted into Qt's SVG generator (vector shapes, heatmaps as embedded images)."""
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(view.size())
    gen.setViewBox(QRect(0, 0, view.width(), view.height()))
    gen.setTitle(path.stem)
    p = QPainter(gen)
    view.render(p)
    p.end()


def _export_scene(item, path: Path, view=None) -> Path:
    """A pyqtgraph item (or a whole layout) to PNG or SVG with pyqtgraph's exporters.
    pyqtgraph 0.14's SVG exporter fails on Qt 6's polyline text ("expected 2, got 1"); then the
    view is painted into QSvgGenerator instead."""
    import pyqtgraph.exporters as ex
    if path.suffix.lower() == ".svg":
        try:
            ex.SVGExporter(item).export(str(path))
        except ValueError:
            if view is None:
                raise
            _svg_by_qt(view, path)
    else:
        exporter = ex.ImageExporter(item)
        w = int(item.sceneBoundingRect().width())
        exporter.parameters()["width"] = max(2 * w, 600)     # sharper than the screen
        exporter.export(str(path))
    if not path.is_file():
        raise OSError(f"{path}: the exporter wrote nothing")
    return path


def write_attention(panel, path) -> Path:
    """The maps on screen: PNG or SVG of the whole grid, or CSV (one row per cell:
    map, query position, query item, key position, key item, weight)."""
    path = Path(path)
    if not panel.maps:
        raise ValueError("no attention maps on screen (the sequence is empty or no model is loaded)")
    if path.suffix.lower() in (".png", ".svg"):
        return _export_scene(panel.view.ci, path, view=panel.view)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["map", "query_position", "query_item", "key_position", "key_item", "weight"])
        for caption, mat in panel.selected_maps():
            n = mat.shape[0]
            for i in range(n):
                for j in range(n):
                    w.writerow([caption, i + 1, panel.ids[i], j + 1, panel.ids[j], f"{float(mat[i, j]):.6g}"])
    return path


def write_training(panel, path) -> Path:
    """The training curves: PNG of both plots, or CSV (plot, curve, x, y; one row a point)."""
    path = Path(path)
    plots = panel.plots if hasattr(panel, "plots") and hasattr(panel.plots, "loss_data") else panel
    if path.suffix.lower() == ".png":
        if not plots.grab().save(str(path)):
            raise OSError(f"{path}: could not write the image")
        return path
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["plot", "curve", "x", "y"])
        for plot, store in (("loss", plots.loss_data), ("validation", plots.metric_data)):
            for name, (xs, ys) in store.items():
                w.writerows((plot, name, x, f"{y:.6g}") for x, y in zip(xs, ys))
    return path


def write_map(panel, path) -> Path:
    """The item map as drawn (colours, path, rings) to PNG."""
    if panel.data is None:
        raise ValueError("no item map on screen (load a model first)")
    return _export_scene(panel.plot.getPlotItem(), Path(path))


# ---- menus ---------------------------------------------------------------------------
EXPORTS = (  # (menu text, window attribute, writer, file filter)
    ("Recommendations…", "recommendations", write_recommendations, "CSV (*.csv);;JSON (*.json)"),
    ("Sequence…", None, None, "CSV (*.csv);;JSON (*.json)"),
    ("Attention maps…", "attention", write_attention, "PNG (*.png);;SVG (*.svg);;CSV (*.csv)"),
    ("Training curves…", "training", write_training, "PNG (*.png);;CSV (*.csv)"),
    ("Item map…", "map", write_map, "PNG (*.png)"),
)


def _suffix(path: str, chosen_filter: str) -> str:
    """Add the chosen filter's suffix when the name has none."""
    if Path(path).suffix:
        return path
    ext = chosen_filter.split("*")[-1].rstrip(")") if "*" in chosen_filter else ""
    return path + ext


def export_dialog(window, text: str, attr, writer, filters: str) -> Path | None:
    """Ask for a file, write it, and say so in the status bar (errors too)."""
    s = window.session
    target = getattr(window, attr, None) if attr else s
    if attr and (target is None or not hasattr(target, "session")):
        s.warn(f"{text.rstrip('…')}: the panel is not ready yet")
        return None
    path, chosen = QFileDialog.getSaveFileName(window, f"Export {text.rstrip('…').lower()}",
                                               str(Path(window.settings.last_workspace or ".")), filters)
    if not path:
        return None
    path = _suffix(path, chosen)
    try:
        out = (writer or write_sequence)(target, path)
    except (OSError, ValueError) as e:
        s.error(f"Could not export to {path}: {e}")
        return None
    s.info(f"exported {text.rstrip('…').lower()} to {out}")
    return out


def _actions(window, names) -> list[QAction]:
    acts = []
    for text, attr, writer, filters in EXPORTS:
        if text in names:
            act = QAction(f"Export {text.lower()}", window)
            act.triggered.connect(lambda _=False, t=text, a=attr, w=writer, f=filters:
                                  export_dialog(window, t, a, w, f))
            acts.append(act)
    return acts


def _add_to_scene_menu(view, acts) -> None:
    """Right-click in a pyqtgraph view: these actions beside pyqtgraph's "Export…"."""
    scene = view.scene()
    for act in acts:
        if act not in scene.contextMenu:
            scene.contextMenu.append(act)


def attach_context_menus(window) -> None:
    """Right-click export on the panels that exist now (called again once the lazily built
    panels are in their docks)."""
    rec = getattr(window, "recommendations", None)
    if rec is not None and hasattr(rec, "list") and not getattr(rec, "_export_menu", False):
        rec._export_menu = True
        # the panel's right-click menu (gui/context_menus.py) ends with the list's actions;
        # a list without a menu of its own shows just these
        if rec.list.contextMenuPolicy() == Qt.DefaultContextMenu:
            rec.list.setContextMenuPolicy(Qt.ActionsContextMenu)
        rec.list.addActions(_actions(window, ("Recommendations…", "Sequence…")))
    att = getattr(window, "attention", None)
    if att is not None and hasattr(att, "view"):
        _add_to_scene_menu(att.view, _actions(window, ("Attention maps…",)))
    tr = getattr(window, "training", None)
    plots = getattr(tr, "plots", None)
    if plots is not None and hasattr(plots, "loss_plot"):
        acts = _actions(window, ("Training curves…",))
        for p in (plots.loss_plot, plots.metric_plot):
            _add_to_scene_menu(p, acts)
    m = getattr(window, "map", None)
    if m is not None and hasattr(m, "plot"):
        _add_to_scene_menu(m.plot, _actions(window, ("Item map…",)))


def install_export(window, menu) -> QMenu:
    """File › Export with one entry per export, and the right-click menus."""
    sub = menu.addMenu("&Export")
    window.export_actions = {}
    for act, (text, *_rest) in zip(_actions(window, [e[0] for e in EXPORTS]), EXPORTS):
        sub.addAction(act)
        window.export_actions[text.rstrip("…")] = act
    attach_context_menus(window)
    if hasattr(window, "panelsReady"):
        window.panelsReady.connect(lambda: attach_context_menus(window))
    return sub
