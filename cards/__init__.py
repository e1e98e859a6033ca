"""Dataset card templates (Jinja2), shipped with the package so installed builders can render them."""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent
ZOO_CARD = "zoo_card.md.j2"
