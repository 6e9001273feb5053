"""The Qt binding must not drop references (PySide6 6.12.0 on Python 3.11 does, and the
interpreter aborts after a few hundred signals). Run in a child: the bug kills the process."""
import subprocess
import sys

CHILD = r"""
import sys
from PySide6.QtCore import (QAbstractListModel, QCoreApplication, QModelIndex, QObject,
                            QSortFilterProxyModel, Qt, Signal)
app = QCoreApplication([])

class Emitter(QObject):
    fired = Signal(int)

class Model(QAbstractListModel):
    def rowCount(self, parent=QModelIndex()):
        return 10
    def data(self, index, role=Qt.DisplayRole):
        return None  # the case the broken binding leaks

e, got, m = Emitter(), [], Model()
proxy = QSortFilterProxyModel()
proxy.setSourceModel(m)  # so C++ calls our data(), as views do
e.fired.connect(lambda v: got.append(v))
before = sys.getrefcount(True), sys.getrefcount(None)
for i in range(5000):
    e.fired.emit(i)
    proxy.data(proxy.index(i % 10, 0), Qt.UserRole)
after = sys.getrefcount(True), sys.getrefcount(None)
print(len(got), after[0] - before[0], after[1] - before[1])
"""


def test_signals_and_model_data_keep_reference_counts():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    delivered, true_delta, none_delta = map(int, out.stdout.split())
    assert delivered == 5000
    assert abs(true_delta) < 100 and abs(none_delta) < 100
