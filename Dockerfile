# Guanxi's container image, built from the lock file (uv.lock): the same image runs the API
# (`guanxi serve`, the default command) and the workers (`guanxi worker`).
#
#   docker build -t guanxi .
#   docker run --rm -e GUANXI_DATABASE_URL=postgresql://... guanxi guanxi db upgrade
#   docker run -d -p 8000:8000 -e GUANXI_DATABASE_URL=... -e GUANXI__AUTH__SECRET=... \
#       -e GUANXI__QUEUES__RUN_WORKERS=false guanxi guanxi serve --workers 4
#   docker run -d -e GUANXI_DATABASE_URL=... -e GUANXI__AUTH__SECRET=... guanxi guanxi worker
#
# See docs/operations.md, "Running on several processes".

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# the uv version of the Makefile (UV_VERSION)
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY guanxi ./guanxi
COPY deploy/install.sh ./deploy/install.sh
RUN UV_COMPILE_BYTECODE=1 sh deploy/install.sh

FROM ${PYTHON_IMAGE}
RUN useradd --system --create-home --home-dir /var/lib/guanxi --shell /usr/sbin/nologin guanxi
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GUANXI__SERVER__HOST=0.0.0.0 \
    GUANXI__AUTH__SECRET_FILE=/var/lib/guanxi/secret
WORKDIR /var/lib/guanxi
USER guanxi
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1
CMD ["guanxi", "serve"]
