"""User settings (QSettings): last workspace, CLIP choice, device, window layout."""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_TAG = "laion2b_s34b_b79k"


class Settings:
    """Typed access to QSettings. Tests pass their own QSettings (an ini file in tmp_path)."""

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings if qsettings is not None else QSettings("MSM4SR", "MSM4SR Studio")

    def _get(self, key: str, default: str = "") -> str:
        v = self.q.value(key, default)
        return "" if v is None else str(v)

    def _set(self, key: str, value) -> None:
        self.q.setValue(key, "" if value is None else str(value))
        self.q.sync()

    # ---- values ------------------------------------------------------------
    @property
    def last_workspace(self) -> str:
        return self._get("workspace/last")

    @last_workspace.setter
    def last_workspace(self, v) -> None:
        self._set("workspace/last", v)

    @property
    def clip_model(self) -> str:
        return self._get("clip/model", DEFAULT_CLIP_MODEL)

    @clip_model.setter
    def clip_model(self, v) -> None:
        self._set("clip/model", v)

    @property
    def clip_tag(self) -> str:
        """open_clip pretrained tag; used when no weights file is set."""
        return self._get("clip/tag", DEFAULT_CLIP_TAG)

    @clip_tag.setter
    def clip_tag(self, v) -> None:
        self._set("clip/tag", v)

    @property
    def clip_weights(self) -> str:
        """A local .safetensors file with CLIP weights; '' means use the tag."""
        return self._get("clip/weights")

    @clip_weights.setter
    def clip_weights(self, v) -> None:
        self._set("clip/weights", v)

    @property
    def device(self) -> str:
        return self._get("compute/device", "auto")

    @device.setter
    def device(self, v) -> None:
        self._set("compute/device", v)

    # ---- window layout ------------------------------------------------------
    def save_window(self, window) -> None:
        self.q.setValue("window/geometry", window.saveGeometry())
        self.q.setValue("window/state", window.saveState())
        self.q.sync()

    def restore_window(self, window) -> bool:
        geometry, state = self.q.value("window/geometry"), self.q.value("window/state")
        ok = False
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            ok = window.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and not state.isEmpty():
            ok = window.restoreState(state) and ok
        return ok
