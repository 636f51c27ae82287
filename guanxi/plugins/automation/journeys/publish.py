"""Write the published JSON Schema of a journey definition (docs/plugins/automation-journey.schema.json):
``python -m guanxi.plugins.automation.journeys.publish``; a test fails when the file is stale."""

from __future__ import annotations

import json
from pathlib import Path

from guanxi.plugins.automation.journeys.definition import schema_document

TARGET = Path(__file__).resolve().parents[4] / "docs" / "plugins" / "automation-journey.schema.json"


def render() -> str:
    return json.dumps(schema_document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
