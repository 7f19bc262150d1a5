"""A fresh interpreter importing the model type does not import transformer-lens."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_model_type_does_not_import_transformer_lens():
    """`Model` resolves the classes at the first check: `import anchorlens` stays seconds faster."""
    code = "import sys, anchorlens.model_classes; print('transformer_lens' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
