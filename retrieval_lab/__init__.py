"""retrieval_lab: config-driven train -> index -> evaluate experiments for dense retrieval."""

from pathlib import Path

# The repository the package is installed from (editable): its conf/ tree and its git history.
PROJECT_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_DIR / "conf"
