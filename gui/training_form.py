"""The training panel's settings form: what to train and with which settings, turned into
the `msm4sr` command-line arguments the panel runs.

Values start at core.config's defaults. The preset box fills the form with a named preset
(core.config.PRESETS, for example the paper's settings) and passes `--preset` on, so the
run's saved config says where its values came from.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QScrollArea,
                               QSpinBox)

STAGES = [("Pre-train + fine-tune", "train"), ("Pre-train only", "pretrain"),
          ("Fine-tune only", "finetune")]
# label -> (--model, [--set overrides]); the names are core/config.py's fields
MODELS = [
    ("MSM4SR", "msm4sr", []),
    ("SASRec (IDs only)", "sasrec", []),
    ("MSM4SR without mixup", "msm4sr", ["mixup=false"]),
    ("MSM4SR without CMCL", "msm4sr", ["cmcl=false"]),
    ("MSM4SR without NIP", "msm4sr", ["nip=false"]),
    ("MSM4SR without pre-training", "msm4sr", ["pretrain=false"]),
    ("MSM4SR with expert LayerNorm", "msm4sr", ["expert_norm=true"]),
    ("MSM4SR pooling every text sentence", "msm4sr", ["text_vectors=0"]),
    ("MSM4SR text only", "msm4sr", ["modalities=text"]),
    ("MSM4SR image only", "msm4sr", ["modalities=image"]),
]
# Peak memory of a training process, measured on the demo (bench: /proc VmHWM): torch itself
# about 750 MB, then the autograd activations of one step, which grow with the batch's windows,
# their positions and the hidden size, not with the catalog: a pre-training step encodes each
# window 4 times (2 modalities x 2 mixed views). Batch 256 x 50 positions x hidden 64 took
# 0.9 GB and the paper preset's batch 1024 took 3.5 GB (4.3 GB in all).
BASE_MB = 750
MB_PER_UNIT = 3.47 / (50 * 64)          # per window, position and hidden unit, 4 passes


def step_memory_mb(batch: int, max_len: int, hidden: int, passes: int = 4) -> float:
    """Estimated peak resident memory of a training process for one step's batch."""
    return BASE_MB + batch * max_len * hidden * MB_PER_UNIT * passes / 4


def available_mb() -> float | None:
    """Memory the system can give without swapping (Linux /proc/meminfo), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


PRESET_LABELS = {None: "Measured defaults", "paper": "Paper (Adam + L2, fine-tune lr 1e-4)"}
DEVICES = ["auto", "cpu", "cuda", "mps"]


def config_values(preset: str | None = None) -> dict:
    """core.config's defaults, with a preset applied; {} if core cannot be imported."""
    try:
        from core.config import Config, PRESETS
    except Exception:  # noqa: BLE001 - the form still works with its own fallbacks
        return {}
    d = Config().to_dict()
    d.update(PRESETS.get(preset, {}) if preset else {})
    return d


class TrainingForm(QScrollArea):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.extra_sets: list[str] = []         # more `key=value` overrides (tests, power users)
        d = config_values()
        self.stage_box = QComboBox()
        for label, cmd in STAGES:
            self.stage_box.addItem(label, cmd)
        self.model_box = QComboBox()
        for label, model, sets in MODELS:
            self.model_box.addItem(label, (model, sets))
        self.preset_box = QComboBox()
        try:
            from core.config import PRESETS
            presets = [None, *sorted(PRESETS)]
        except Exception:  # noqa: BLE001
            presets = [None]
        for p in presets:
            self.preset_box.addItem(PRESET_LABELS.get(p, p), p)
        self.preset_box.setToolTip("Measured defaults: AdamW, chosen on ML-1M and Amazon Scientific "
                                   "(docs/benchmarks.md). Paper: the authors' optimiser and settings.")
        self.pre_epochs = QSpinBox(minimum=1, maximum=10_000, value=d.get("pretrain_epochs", 50))
        self.ft_epochs = QSpinBox(minimum=1, maximum=10_000, value=d.get("finetune_epochs", 200))
        self.pre_batch = QSpinBox(minimum=1, maximum=65_536, value=d.get("pretrain_batch", 256))
        self.ft_batch = QSpinBox(minimum=1, maximum=65_536, value=d.get("finetune_batch", 128))
        self.pre_lr = _number_box(d.get("pretrain_lr", 1e-3), minimum=1e-6)
        self.ft_lr = _number_box(d.get("finetune_lr", 1e-3), minimum=1e-6)
        self.ft_wd = _number_box(d.get("finetune_weight_decay", 0.0), minimum=0.0)
        self.ft_wd.setToolTip("AdamW: decoupled, never on biases, norms or embeddings; "
                              "the paper preset: L2 on every weight")
        self.hidden = QSpinBox(minimum=8, maximum=4096, singleStep=8, value=d.get("hidden", 64))
        self.max_len = QSpinBox(minimum=2, maximum=1000, value=d.get("max_len", 50))
        self.device_box = QComboBox()
        self.device_box.addItems(DEVICES)
        self.run_name = QLineEdit(placeholderText="automatic")
        self.from_ckpt = QLineEdit(placeholderText="latest pre-trained checkpoint")
        browse = QPushButton("…", maximumWidth=28)
        browse.clicked.connect(self._browse_from)
        from_row = QHBoxLayout()
        from_row.setContentsMargins(0, 0, 0, 0)
        from_row.addWidget(self.from_ckpt, 1)
        from_row.addWidget(browse)
        self.memory = QLabel(wordWrap=True)
        self.memory.setToolTip("A step's memory grows with the batch, the max length and the hidden "
                               "size, not with the number of items")
        for box in (self.pre_batch, self.ft_batch, self.max_len, self.hidden):
            box.valueChanged.connect(self._show_memory)
        self.resume = QCheckBox("Resume last run")
        self.resume.setToolTip("Continue the last (cancelled or interrupted) run from its checkpoint")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for label, w in (("Stage", self.stage_box), ("Model", self.model_box), ("Settings", self.preset_box),
                         ("Pre-train epochs", self.pre_epochs), ("Fine-tune epochs", self.ft_epochs),
                         ("Pre-train batch", self.pre_batch), ("Fine-tune batch", self.ft_batch),
                         ("Pre-train LR", self.pre_lr), ("Fine-tune LR", self.ft_lr),
                         ("Fine-tune weight decay", self.ft_wd), ("Hidden size", self.hidden),
                         ("Max length", self.max_len), ("Device", self.device_box),
                         ("Run name", self.run_name)):
            form.addRow(label, w)
        form.addRow("Memory", self.memory)
        form.addRow("Fine-tune from", from_row)
        form.addRow("", self.resume)
        box = QGroupBox("Settings")
        box.setLayout(form)
        self.setWidgetResizable(True)
        self.setWidget(box)
        self.setMinimumWidth(200)      # scrolls sideways on a small screen
        self.stage_box.currentIndexChanged.connect(self._form_changed)
        self.model_box.currentIndexChanged.connect(self._form_changed)
        self.preset_box.currentIndexChanged.connect(self._preset_changed)
        self._form_changed()

    def _form_changed(self, *_) -> None:
        cmd = self.stage_box.currentData()
        model, sets = self.model_box.currentData()
        pre = model == "msm4sr" and cmd in ("train", "pretrain") and "pretrain=false" not in sets
        ft = cmd in ("train", "finetune") or model == "sasrec"
        for w in (self.pre_epochs, self.pre_batch, self.pre_lr):
            w.setEnabled(pre)
        for w in (self.ft_epochs, self.ft_batch, self.ft_lr, self.ft_wd):
            w.setEnabled(ft)
        self.from_ckpt.setEnabled(cmd == "finetune" and model == "msm4sr")
        self.stage_box.setEnabled(model == "msm4sr")
        self._show_memory()

    def peak_mb(self) -> float:
        """The larger of the two stages' estimated peak memory, for the settings on the form."""
        L, H = self.max_len.value(), self.hidden.value()
        pre = step_memory_mb(self.pre_batch.value(), L, H) if self.pre_batch.isEnabled() else 0.0
        ft = step_memory_mb(self.ft_batch.value(), L, H, passes=2) if self.ft_batch.isEnabled() else 0.0
        return max(pre, ft, BASE_MB)

    def memory_problem(self) -> str | None:
        """Why the run would not fit in memory (then it is not started), or None."""
        need, free = self.peak_mb(), available_mb()
        if free is None or need <= free:
            return None
        return (f"these settings need about {need / 1024:.1f} GB of memory and {free / 1024:.1f} GB "
                "is free: lower the pre-train or fine-tune batch (or the max length)")

    def _show_memory(self, *_) -> None:
        need, free = self.peak_mb(), available_mb()
        tight = free is not None and need > 0.5 * free
        self.memory.setText(f"about {need / 1024:.1f} GB at its peak"
                            + (f" ({free / 1024:.1f} GB free)" if tight else ""))
        self.memory.setStyleSheet("color: #b45309;" if tight else "color: #4b5563;")

    def _preset_changed(self, *_) -> None:
        d = config_values(self.preset_box.currentData())
        for key, box in (("pretrain_epochs", self.pre_epochs), ("finetune_epochs", self.ft_epochs),
                         ("pretrain_batch", self.pre_batch), ("finetune_batch", self.ft_batch),
                         ("pretrain_lr", self.pre_lr), ("finetune_lr", self.ft_lr),
                         ("finetune_weight_decay", self.ft_wd), ("hidden", self.hidden),
                         ("max_len", self.max_len)):
            if key in d:
                box.setValue(d[key])

    def workspace_changed(self) -> None:
        """Nothing of another workspace's runs stays in the form."""
        self.resume.setChecked(False)
        self.run_name.clear()
        self.from_ckpt.clear()

    def _browse_from(self) -> None:
        start = str(self.session.ws_path / "runs") if self.session.ws_path else ""
        path = QFileDialog.getExistingDirectory(self, "Pre-trained checkpoint", start)
        if path:
            self.from_ckpt.setText(path)

    def arguments(self, last_run: str | None = None) -> list[str]:
        """`python -m core.cli ...` arguments for the form's settings."""
        from gui.training_runs import latest_run
        ws = str(Path(self.session.ws_path).resolve())
        cmd = self.stage_box.currentData()
        model, sets = self.model_box.currentData()
        if model == "sasrec":
            cmd = "train"
        args = [cmd, ws, "--progress-json", "--model", model]
        preset = self.preset_box.currentData()
        if preset:
            args += ["--preset", preset]
        sets = list(sets)
        if self.pre_epochs.isEnabled():
            sets += [f"pretrain_epochs={self.pre_epochs.value()}", f"pretrain_batch={self.pre_batch.value()}",
                     f"pretrain_lr={self.pre_lr.value():g}"]
        if self.ft_epochs.isEnabled():
            which = "sasrec" if model == "sasrec" else "finetune"
            sets += [f"finetune_epochs={self.ft_epochs.value()}", f"finetune_batch={self.ft_batch.value()}",
                     f"{which}_lr={self.ft_lr.value():g}", f"{which}_weight_decay={self.ft_wd.value():g}"]
        sets += [f"hidden={self.hidden.value()}", f"max_len={self.max_len.value()}",
                 f"device={self.device_box.currentText()}"]
        sets += self.extra_sets
        for s in sets:
            args += ["--set", s]
        run = self.run_name.text().strip()
        if not run and self.resume.isChecked():
            run = last_run or latest_run(Path(ws) / "runs") or ""
        if run:
            args += ["--run", run]
        if cmd == "finetune" and self.from_ckpt.isEnabled() and self.from_ckpt.text().strip():
            args += ["--from", self.from_ckpt.text().strip()]
        if self.resume.isChecked():
            args.append("--resume")
        return args


def _number_box(value: float, minimum: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox(decimals=6, minimum=minimum, maximum=1.0, singleStep=1e-4)
    box.setValue(float(value))
    return box
