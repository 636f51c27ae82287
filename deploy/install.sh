#!/bin/sh
# Install Guanxi and its locked dependencies (uv.lock, never re-resolved) into ./.venv of the
# current folder, which holds pyproject.toml, uv.lock, README.md and guanxi/. The Dockerfile
# runs it; tests/deploy/test_deployment_files.py runs it too, so the image's install is tested.
# Extras: PostgreSQL (asyncpg) and the builtin plugins' own dependencies (WeCom, referral).
set -eu
UV="${UV:-uv}"
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy
"$UV" sync --frozen --no-dev --no-editable --extra postgres --extra wecom --extra referral
