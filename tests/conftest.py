"""Test set-up: the repository root on sys.path, MindSpore in graph mode on CPU (what CI has)."""
import sys
from pathlib import Path

import mindspore as ms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device("CPU")
