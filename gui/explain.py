"""Why this recommendation: for the recommendation chosen in the list (the top one until
another is clicked), each sequence item's contribution (the drop in the target's score
when that item is left out, core.explore.explain's one batched pass on a worker), the
last position's attention on each item, and the keywords and title words the target
shares with the items that contribute most.

`with_explain(recommendations, explain)` stacks the recommendations list over this panel
(the Recommendations dock's widget) and ties the chosen row to the panel's target."""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from gui.model_calls import LatestRequest, model_lock

UP, DOWN, ATTN, TRACK = QColor("#2563eb"), QColor("#dc2626"), QColor("#9ca3af"), QColor("#f3f4f6")


def explain_for(rec, ws_path, sequence: list[str], target: str):
    """Worker: core.explore.explain on this thread's own workspace, holding the model's lock."""
    from core.explore.explain import explain
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws, model_lock(rec):
        return explain(ws, rec, sequence, target)


class ContributionBars(QWidget):
    """One row per sequence item: its title, the score drop as a bar from a zero line
    (blue: the item raises the target, red: it lowers it), the number, and the last
    position's attention on it as a thin grey bar."""
    ROW = 30

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[tuple[str, float | None, float | None]] = []   # (label, drop, attention)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def set_rows(self, rows) -> None:
        self.rows = list(rows)
        self.setFixedHeight(max(1, len(self.rows)) * self.ROW + 6)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(300, max(1, len(self.rows)) * self.ROW + 6)

    def bar_extent(self, k: int) -> tuple[float, float]:
        """(left, right) x of row k's drop bar in pixels (for tests and hit checks)."""
        g = self._geometry()
        drop = self.rows[k][1] or 0.0
        x = g["zero"] + drop * g["scale"]
        return (min(x, g["zero"]), max(x, g["zero"]))

    def _geometry(self) -> dict:
        fm = QFontMetrics(self.font())
        label_w = min(max([fm.horizontalAdvance(r[0]) for r in self.rows] + [40]) + 10,
                      int(self.width() * 0.42))
        num_w = fm.horizontalAdvance("-00.000") + 8
        left, right = label_w, max(label_w + 20, self.width() - num_w - 4)
        drops = [r[1] for r in self.rows if r[1] is not None]
        lo, hi = min(drops + [0.0]), max(drops + [0.0])
        span = (hi - lo) or 1.0
        scale = (right - left) / span
        return {"label_w": label_w, "num_w": num_w, "left": left, "right": right,
                "zero": left + (-lo) * scale, "scale": scale}

    def paintEvent(self, _event) -> None:
        if not self.rows:
            return
        g = self._geometry()
        fm = QFontMetrics(self.font())
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        for k, (label, drop, attn) in enumerate(self.rows):
            y = 3 + k * self.ROW
            p.setPen(QColor("#1f2937"))
            p.drawText(QRectF(0, y, g["label_w"] - 6, self.ROW - 8), Qt.AlignRight | Qt.AlignVCenter,
                       fm.elidedText(label, Qt.ElideRight, g["label_w"] - 6))
            p.setPen(Qt.NoPen)
            p.setBrush(TRACK)
            p.drawRect(QRectF(g["left"], y + 3, g["right"] - g["left"], self.ROW - 14))
            if drop is not None:
                a, b = self.bar_extent(k)
                p.setBrush(UP if drop >= 0 else DOWN)
                p.drawRoundedRect(QRectF(a, y + 3, max(1.5, b - a), self.ROW - 14), 2, 2)
            if attn is not None:     # attention weights sum to 1 over the sequence
                p.setBrush(ATTN)
                p.drawRect(QRectF(g["left"], y + self.ROW - 9, (g["right"] - g["left"]) * attn, 3))
            p.setPen(QColor("#4b5563"))
            p.drawText(QRectF(g["right"] + 4, y, g["num_w"], self.ROW - 8), Qt.AlignLeft | Qt.AlignVCenter,
                       "—" if drop is None else f"{drop:+.3f}")
        p.setPen(QColor("#6b7280"))
        p.drawLine(int(g["zero"]), 2, int(g["zero"]), self.height() - 2)
        p.end()


class ExplainPanel(QWidget):
    explained = Signal(object)           # the core.explore.explain.Explanation now shown

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.target: str | None = None
        self.explanation = None
        self.heading = QLabel(wordWrap=True)
        self.heading.setTextFormat(Qt.RichText)
        self.legend = QLabel("<span style='color:#2563eb'>■</span> raises the score "
                             "<span style='color:#dc2626'>■</span> lowers it (score drop when the item "
                             "is left out) · <span style='color:#9ca3af'>▬</span> last position's attention")
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: #6b7280; font-size: 11px;")
        self.bars = ContributionBars()
        self.shared = QLabel(wordWrap=True)
        self.shared.setTextFormat(Qt.RichText)
        self.shared.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status = QLabel(wordWrap=True)
        self.status.setStyleSheet("color: #6b7280;")
        body = QWidget()
        inner = QVBoxLayout(body)
        inner.setContentsMargins(6, 4, 6, 4)
        for w in (self.heading, self.status, self.bars, self.legend, self.shared):
            inner.addWidget(w)
        inner.addStretch(1)
        scroll = QScrollArea()             # a short dock scrolls instead of stacking rows on each other
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(scroll)
        self._req = LatestRequest(self._build, delay_ms=60, parent=self)
        self._req.result.connect(self._show)
        self._req.failed.connect(self._failed)
        session.sequenceChanged.connect(self.refresh)
        session.modelChanged.connect(self.refresh)
        session.workspaceChanged.connect(lambda: self.set_target(None))
        self._clear("Choose a recommendation to see why the model ranks it.")

    @property
    def busy(self) -> bool:
        return self._req.busy

    def set_target(self, item_id: str | None) -> None:
        if item_id != self.target:
            self.target = item_id
            self.refresh()

    def follow_results(self, results) -> None:
        """New recommendations on screen: keep the chosen one while it is still among them,
        else explain the top one."""
        ids = [str(i) for i, _ in results]
        self.set_target(self.target if self.target in ids else (ids[0] if ids else None))

    def refresh(self, *_) -> None:
        self._req.request()

    def _build(self):
        rec, seq, target = self.session.recommender, list(self.session.sequence), self.target
        if rec is None or not seq or target is None:
            self._clear("Choose a recommendation to see why the model ranks it.")
            return None
        self.status.setText("explaining…")
        return explain_for, (rec, self.session.ws_path, seq, target), {}

    def _clear(self, text: str) -> None:
        self.explanation = None
        self.heading.setText("")
        self.bars.set_rows([])
        self.shared.setText("")
        self.legend.setVisible(False)
        self.status.setText(text)

    def _failed(self, exc, tb) -> None:
        self._clear(f"Cannot explain: {exc}")

    def _show(self, e, latency_ms: float) -> None:
        if e.target != self.target:
            return
        self.explanation = e
        self.heading.setText(f"Why <b>{_esc(e.title or e.target)}</b>? score {e.score:.3f}")
        self.heading.setToolTip(f"rank {e.rank} among all the model's items (the sequence's own included)")
        self.bars.set_rows([(c.title or c.item_id, c.drop, c.attention) for c in e.contributions])
        self.legend.setVisible(True)
        lines = []
        for s in e.shared:
            bits = ([f"keywords <b>{_esc(', '.join(s.keywords[:8]))}</b>"] if s.keywords else []) + \
                   ([f"words <b>{_esc(', '.join(s.words[:8]))}</b>"] if s.words else [])
            lines.append(f"shares with <i>{_esc(s.title or s.item_id)}</i> (+{s.drop:.3f}): "
                         + ("; ".join(bits) if bits else "no keywords or title words"))
        self.shared.setText("<br>".join(lines) if lines else
                            "No sequence item raises the score: nothing shared to show.")
        clipped = len(e.sequence) - len(e.contributions)
        self.status.setText(f"{e.seconds * 1000:.0f} ms" + (f" · the first {clipped} items are beyond "
                            "the model's window and not read" if clipped else ""))
        self.explained.emit(e)


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def with_explain(recommendations, explain: ExplainPanel) -> QSplitter:
    """The recommendations list over the explanation, the chosen row explained."""
    split = QSplitter(Qt.Orientation.Vertical)
    split.addWidget(recommendations)
    split.addWidget(explain)
    split.setStretchFactor(0, 3)
    split.setStretchFactor(1, 2)
    split.setSizes([550, 450])         # the bars get room from the start, not a sliver
    lst = getattr(recommendations, "list", None)
    if lst is not None:
        from gui.recommendations import ID_ROLE
        lst.currentItemChanged.connect(lambda row, _old: row is not None and explain.set_target(row.data(ID_ROLE)))
        recommendations.resultsShown.connect(explain.follow_results)
    return split
