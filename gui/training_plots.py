"""The training panel's live plots: loss per step and validation per epoch.

Legends sit under each plot, never over the curves. The last batch of an epoch is usually
smaller (fewer in-batch negatives, so a much lower loss); step events say how many rows a
batch had, and a short batch is left out of the loss curve instead of drawn as a plunge.
A resumed run starts from the run's earlier history (its progress.jsonl), so the curves
go on where they stopped instead of restarting at epoch 1.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def partial_batch(ev: dict) -> bool:
    rows, batch = ev.get("rows"), ev.get("batch")
    return rows is not None and bool(batch) and int(rows) < int(batch)


def _plot(title: str, bottom: str) -> tuple[pg.PlotWidget, pg.LegendItem]:
    w = pg.PlotWidget(title=title)
    w.setBackground("w")
    w.setLabel("bottom", bottom)
    w.showGrid(x=True, y=True, alpha=0.2)
    item = w.getPlotItem()
    # under the x axis (row 4 of the PlotItem's grid), laid out in columns: never on the curves
    legend = pg.LegendItem(colCount=2, labelTextColor="#333", labelTextSize="8pt",
                           verSpacing=-6, horSpacing=12)
    item.layout.addItem(legend, 4, 1)
    item.legend = legend            # plot(name=...) adds its curves to this legend
    return w, legend


class TrainingPlots(QSplitter):
    def __init__(self, parent=None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        pg.setConfigOptions(antialias=True)
        self.loss_plot, self.loss_legend = _plot("Loss per step", "step")
        self.metric_plot, self.metric_legend = _plot("Validation per epoch", "epoch")
        self.addWidget(self.loss_plot)
        self.addWidget(self.metric_plot)
        self.loss_data: dict[str, tuple[list, list]] = {}      # curve name -> (xs, ys)
        self.metric_data: dict[str, tuple[list, list]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.drawn: dict[str, int] = {}                     # curve -> points drawn
        self.steps = 0                                      # step events seen (plot x), all stages
        self.epochs = 0
        self.partial_left_out = 0
        self.dirty = False

    def clear(self) -> None:
        self.loss_data.clear()
        self.metric_data.clear()
        self.curves.clear()
        self.drawn.clear()
        self.steps = self.epochs = self.partial_left_out = 0
        for plot, legend in ((self.loss_plot, self.loss_legend), (self.metric_plot, self.metric_legend)):
            plot.clear()
            legend.clear()
            plot.getPlotItem().enableAutoRange()       # no axis range carried over from another run
        self.dirty = False

    def add_step(self, ev: dict) -> None:
        if partial_batch(ev):
            self.partial_left_out += 1
            return
        stage = str(ev.get("stage", ""))
        self.steps += 1                                     # one x axis across stages
        losses = dict(ev.get("losses") or {})
        if not losses and ev.get("loss") is not None:
            losses = {"loss": ev["loss"]}
        for name, v in losses.items():
            if v is not None:
                xs, ys = self.loss_data.setdefault(f"{stage} {name}", ([], []))
                xs.append(self.steps)
                ys.append(float(v))
        self.dirty = True

    def add_epoch(self, ev: dict) -> None:
        stage = str(ev.get("stage", ""))
        self.epochs += 1
        for name, v in (ev.get("valid") or {}).items():
            if v is not None:
                xs, ys = self.metric_data.setdefault(f"{stage} {name}", ([], []))
                xs.append(self.epochs)
                ys.append(float(v))
        self.dirty = True

    def add_history(self, events: list[dict]) -> None:
        for ev in events:
            (self.add_step if ev.get("event") == "step" else self.add_epoch)(ev)

    def redraw(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        for store, plot, prefix in ((self.loss_data, self.loss_plot, "loss:"),
                                    (self.metric_data, self.metric_plot, "metric:")):
            for name, (xs, ys) in store.items():
                key = prefix + name
                curve = self.curves.get(key)
                if curve is None:
                    color = COLORS[len([k for k in self.curves if k.startswith(prefix)]) % len(COLORS)]
                    sym = "o" if prefix == "metric:" else None
                    curve = plot.plot([], [], name=name, pen=pg.mkPen(color, width=1.5),
                                      symbol=sym, symbolSize=6, symbolBrush=color)
                    self.curves[key] = curve
                if self.drawn.get(key) != len(xs):     # only curves that grew
                    self.drawn[key] = len(xs)
                    curve.setData(xs, ys)
