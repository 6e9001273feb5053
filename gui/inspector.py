"""Item inspector: image, text, popularity and the image keywords with their scores.

The image is decoded and the popularity rank computed on workers; the rest are
single indexed reads. Where CLIP was unavailable when features were built, the
panel says so and offers the two ways to get it (a local weights file, or letting
open_clip download), both remembered in the settings.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (QFileDialog, QFrame, QLabel, QProgressBar,
                               QPushButton, QScrollArea, QSizePolicy, QVBoxLayout, QWidget)

from gui.thumbnails import decode_image
from gui.workers import run_for

IMAGE_BOX = QSize(300, 300)


def source_label(source: str) -> str:
    """'clip:ViT-B-32:laion2b_s34b_b79k' -> 'CLIP ViT-B-32 / laion2b_s34b_b79k'."""
    if source == "catalog-tags":
        return "catalog tags"
    if source.startswith("clip:"):
        parts = source.split(":", 2)
        model = parts[1] if len(parts) > 1 else "?"
        tag = parts[2] if len(parts) > 2 else ""
        if tag.startswith("file="):
            tag = f"weights file {tag[5:13]}"
        return f"CLIP {model} / {tag}" if tag else f"CLIP {model}"
    return source


def popularity_ranks(ws_path) -> dict[str, tuple[int, int, int]]:
    """item -> (interactions, rank, items ranked); worker, own connection."""
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        pop = ws.popularity()
    ranked = sorted(pop.items(), key=lambda kv: (-kv[1], kv[0]))
    n = len(ranked)
    return {iid: (c, r + 1, n) for r, (iid, c) in enumerate(ranked)}


def rebuild_features(ws_path, clip_model: str, clip_pretrained, clip_weights, device, progress=None):
    from core.features.build import build_features
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        return build_features(ws, clip_model=clip_model, clip_pretrained=clip_pretrained,
                              clip_weights=clip_weights, device=device,
                              **({"progress": progress} if progress else {}))


class KeywordBars(QWidget):
    """Keywords as horizontal bars, longest for the best score (scores shown as numbers too)."""
    ROW = 20

    def __init__(self, parent=None):
        super().__init__(parent)
        self.words: list[tuple[str, float]] = []
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def set_keywords(self, words: list[tuple[str, float]]) -> None:
        self.words = list(words)
        self.setFixedHeight(max(1, len(self.words)) * self.ROW + 4)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(260, max(1, len(self.words)) * self.ROW + 4)

    def paintEvent(self, _event) -> None:
        if not self.words:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        fm = QFontMetrics(self.font())
        label_w = min(max(fm.horizontalAdvance(w) for w, _ in self.words) + 10, self.width() // 2)
        score_w = fm.horizontalAdvance("0.000") + 8
        bar_w = max(10, self.width() - label_w - score_w - 4)
        top = max(s for _, s in self.words)
        low = min(min(s for _, s in self.words), 0.0)
        span = (top - low) or 1.0
        for r, (word, score) in enumerate(self.words):
            y = 2 + r * self.ROW
            p.setPen(QColor("#1f2937"))
            p.drawText(QRectF(0, y, label_w - 6, self.ROW), Qt.AlignRight | Qt.AlignVCenter,
                       fm.elidedText(word, Qt.ElideRight, label_w - 6))
            frac = max(0.02, (score - low) / span)
            p.setPen(Qt.NoPen)
            p.setBrush(QColor("#e5e7eb"))
            p.drawRoundedRect(QRectF(label_w, y + 4, bar_w, self.ROW - 8), 3, 3)
            p.setBrush(QColor("#3b82f6"))
            p.drawRoundedRect(QRectF(label_w, y + 4, bar_w * frac, self.ROW - 8), 3, 3)
            p.setPen(QColor("#4b5563"))
            p.drawText(QRectF(label_w + bar_w + 4, y, score_w, self.ROW), Qt.AlignLeft | Qt.AlignVCenter,
                       f"{score:.3f}")
        p.end()


class InspectorPanel(QScrollArea):
    def __init__(self, session, settings=None, parent=None):
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.item_id: str | None = None
        from gui.window_layout import SIDE_MIN
        self.setMinimumWidth(SIDE_MIN)     # never squeezed to a sliver on a small window
        self._ranks: dict | None = None
        self._ranks_for = None
        self._ranks_loading = False
        self._img_request = 0
        self.building = False

        body = QWidget()
        self.setWidget(body)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.NoFrame)
        lay = QVBoxLayout(body)
        lay.setContentsMargins(8, 8, 8, 8)

        self.empty = QLabel("Select an item in the catalog or the sequence to inspect it.")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #6b7280;")
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignCenter)
        self.image.setMinimumHeight(120)
        self.image.setMaximumHeight(IMAGE_BOX.height())
        # the picture follows the dock's width (a 300 px pixmap would widen a narrow dock
        # past its edge and cut every line of text beside it)
        self.image.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self._picture: QImage | None = None
        self.title = QLabel()
        self.title.setWordWrap(True)
        f = QFont()
        f.setPointSize(f.pointSize() + 3)
        f.setBold(True)
        self.title.setFont(f)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.meta = QLabel()
        self.meta.setWordWrap(True)
        self.meta.setStyleSheet("color: #4b5563;")
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.stats.setStyleSheet("color: #4b5563;")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.keywords_title = QLabel("<b>Image keywords</b>")
        self.keywords_box = QVBoxLayout()
        self.keywords_box.setSpacing(2)

        # shown when CLIP was missing at build time
        self.clip_box = QFrame()
        self.clip_box.setFrameShape(QFrame.StyledPanel)
        self.clip_box.setStyleSheet("QFrame { background: #fff7e6; }")
        cb = QVBoxLayout(self.clip_box)
        self.clip_note = QLabel()
        self.clip_note.setWordWrap(True)
        self.choose_weights = QPushButton("Choose weights file…")
        self.choose_weights.clicked.connect(self._choose_weights)
        self.download = QPushButton("Let open_clip download")
        self.download.clicked.connect(self.download_clip)
        row = QVBoxLayout()          # stacked: the dock may be narrow
        row.addWidget(self.choose_weights)
        row.addWidget(self.download)
        self.build_progress = QProgressBar()
        self.build_progress.setVisible(False)
        cb.addWidget(self.clip_note)
        cb.addLayout(row)
        cb.addWidget(self.build_progress)

        for w in (self.empty, self.image, self.title, self.meta, self.stats, self.text):
            lay.addWidget(w)
        lay.addSpacing(6)
        lay.addWidget(self.keywords_title)
        lay.addLayout(self.keywords_box)
        lay.addWidget(self.clip_box)
        lay.addStretch(1)
        self._show_nothing()

        session.selectionChanged.connect(self.show_item)
        session.workspaceChanged.connect(self._workspace_changed)
        session.itemsChanged.connect(self._items_changed)

    # ---- updates -----------------------------------------------------------
    def _workspace_changed(self) -> None:
        self._ranks, self._ranks_for = None, None
        self.item_id = None
        self._show_nothing()
        self._update_clip_box()

    def _items_changed(self) -> None:
        self._ranks = None          # new items: recount lazily
        if self.item_id:
            self.show_item(self.item_id)

    def _show_nothing(self) -> None:
        self.empty.setVisible(True)
        for w in (self.image, self.title, self.meta, self.stats, self.text, self.keywords_title, self.clip_box):
            w.setVisible(False)
        self._clear_keywords()

    def _clear_keywords(self) -> None:
        while self.keywords_box.count():
            w = self.keywords_box.takeAt(0).widget()
            if w is not None:
                w.deleteLater()

    def show_item(self, item_id: str) -> None:
        ws = self.session.ws
        item = ws.item(item_id) if ws is not None else None
        if item is None:
            self.item_id = None
            self._show_nothing()
            return
        self.item_id = item_id
        self.empty.setVisible(False)
        for w in (self.image, self.title, self.meta, self.stats, self.text, self.keywords_title):
            w.setVisible(True)
        self.title.setText(item.title or item.id)
        cats = ", ".join(c for c in item.categories.split("|") if c)
        bits = [f"id {item.id}"]
        if item.brand:
            bits.append(item.brand)
        if cats:
            bits.append(cats)
        if item.is_new:
            bits.append("<b style='color:#b45309'>new item (added here, not in the training data)</b>")
        elif item.cold:
            bits.append("cold-start item (held out of training)")
        self.meta.setText(" · ".join(bits))
        self.text.setText(item.text or "<i>no description</i>")
        self.text.setTextFormat(Qt.PlainText if item.text else Qt.RichText)
        self._show_stats()
        self._show_keywords(item)
        self._load_image(ws.image_path(item))

    def _show_stats(self) -> None:
        if self._ranks is None or self._ranks_for != self.session.ws_path:
            self.stats.setText("counting interactions…")
            if not self._ranks_loading:
                self._ranks_loading = True
                path = self.session.ws_path
                run_for(self, popularity_ranks, path, on_done=lambda r: self._ranks_done(path, r),
                         on_error=lambda exc, tb: self._ranks_failed(exc))
            return
        count, rank, n = self._ranks.get(self.item_id, (0, None, len(self._ranks)))
        if rank is None:
            self.stats.setText("0 interactions (never seen in the training data)")
        else:
            self.stats.setText(f"{count:,} interactions · popularity rank {rank:,} of {n:,}")

    def _ranks_done(self, path, ranks) -> None:
        self._ranks_loading = False
        if path != self.session.ws_path:
            return
        self._ranks, self._ranks_for = ranks, path
        if self.item_id:
            self._show_stats()

    def _ranks_failed(self, exc) -> None:
        self._ranks_loading = False
        self.stats.setText("interaction count unavailable")
        self.session.warn(f"could not count interactions: {exc}")

    def _load_image(self, path) -> None:
        self._img_request += 1
        req = self._img_request
        self._picture = None
        if path is None:
            self.image.setPixmap(QPixmap())
            self.image.setText("no image")
            return
        self.image.setText("loading image…")
        run_for(self, decode_image, str(path), IMAGE_BOX.width(), IMAGE_BOX.height(),
                 on_done=lambda img: self._image_done(req, img),
                 on_error=lambda exc, tb: self._image_failed(req, path))

    def _image_done(self, req, image) -> None:
        if req == self._img_request:
            self._picture = image
            self._fit_picture()

    def _fit_picture(self) -> None:
        if self._picture is None or self._picture.isNull():
            return
        w = max(40, min(IMAGE_BOX.width(), self.viewport().width() - 16))
        pic = self._picture
        if pic.width() > w:
            pic = pic.scaledToWidth(w, Qt.SmoothTransformation)
        self.image.setPixmap(QPixmap.fromImage(pic))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_picture()

    def _image_failed(self, req, path) -> None:
        if req == self._img_request:
            self.image.setPixmap(QPixmap())
            self.image.setText(f"the image cannot be read ({path.name})")

    def _show_keywords(self, item) -> None:
        self._clear_keywords()
        ws = self.session.ws
        by_source = ws.keywords(item.id)
        for source, words in by_source.items():
            head = QLabel(f"from <b>{source_label(source)}</b>")
            head.setStyleSheet("color: #4b5563;")
            bars = KeywordBars()
            bars.set_keywords([(k.word, k.score) for k in words])
            self.keywords_box.addWidget(head)
            self.keywords_box.addWidget(bars)
        if not by_source:
            row = ws.db.execute("SELECT problem FROM problems WHERE item=? AND stage='image'",
                                (item.id,)).fetchone()
            problem = row[0] if row else None
            note = QLabel("no keywords for this item" + (f" ({problem})" if problem else "")
                          + ("; they are computed in the background" if item.is_new and not problem else ""))
            note.setStyleSheet("color: #6b7280;")
            note.setWordWrap(True)
            self.keywords_box.addWidget(note)
        self._update_clip_box()

    # ---- CLIP missing ------------------------------------------------------
    def clip_missing_reason(self) -> str | None:
        """Why there are no CLIP keywords in this workspace, or None when there is no problem to show."""
        ws = self.session.ws
        if ws is None:
            return None
        meta = ws.get_meta("image_modality")
        if isinstance(meta, dict) and not meta.get("available", True):
            return meta.get("reason") or "CLIP was not available when the features were built"
        if meta is None and not ws.keyword_sources():
            return "image keywords have not been computed for this workspace"
        return None

    def _update_clip_box(self) -> None:
        reason = self.clip_missing_reason()
        self.clip_box.setVisible(reason is not None or self.building)
        if reason is not None and not self.building:
            self.clip_note.setText(
                "<b>No CLIP image keywords.</b> " + _escape(reason) +
                "<br>Give a CLIP weights file (.safetensors) or let open_clip download "
                f"<i>{self._clip_model()} / {self._clip_tag()}</i>; the features are then rebuilt.")

    def _clip_model(self) -> str:
        return self.settings.clip_model if self.settings else "ViT-B-32"

    def _clip_tag(self) -> str:
        return self.settings.clip_tag if self.settings else "laion2b_s34b_b79k"

    def _choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CLIP weights", "", "safetensors (*.safetensors)")
        if path:
            self.use_weights_file(path)

    def use_weights_file(self, path: str) -> None:
        if self.settings:
            self.settings.clip_weights = path
        self._rebuild(clip_pretrained=None, clip_weights=path)

    def download_clip(self) -> None:
        if self.settings:
            self.settings.clip_weights = ""
        self._rebuild(clip_pretrained=self._clip_tag(), clip_weights=None)

    def _rebuild(self, clip_pretrained, clip_weights) -> None:
        if self.session.ws_path is None or self.building:
            return
        self.building = True
        self.choose_weights.setEnabled(False)
        self.download.setEnabled(False)
        self.build_progress.setVisible(True)
        self.build_progress.setRange(0, 0)
        self.clip_note.setText("Building features with CLIP… (this runs in the background)")
        device = self.settings.device if self.settings else "auto"
        run_for(self, rebuild_features, self.session.ws_path, self._clip_model(), clip_pretrained,
                 clip_weights, None if device in ("", "auto") else device,
                 on_progress=self._build_progress, on_done=self._build_done,
                 on_error=lambda exc, tb: self._build_finished(f"Feature build failed: {exc}", "error"))

    def _build_progress(self, stage: str, done: int, total: int) -> None:
        self.build_progress.setRange(0, total or 0)
        self.build_progress.setValue(done)
        self.build_progress.setFormat(f"{stage} %v / %m")

    def _build_done(self, report) -> None:
        if getattr(report, "clip_available", False):
            self._build_finished(f"CLIP keywords computed ({getattr(report, 'image_source', '')})", "info")
        else:
            self._build_finished("CLIP still unavailable: " +
                                 (getattr(report, "clip_message", "") or "unknown reason"), "error")

    def _build_finished(self, text: str, level: str) -> None:
        self.building = False
        self.choose_weights.setEnabled(True)
        self.download.setEnabled(True)
        self.build_progress.setVisible(False)
        self.session.message.emit(level, text)
        if self.item_id:
            self.show_item(self.item_id)
        else:
            self._update_clip_box()


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
