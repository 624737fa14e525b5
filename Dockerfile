# The inferswarm image: the CLI, Locust, the reference target and the test assets.
#
# Any base with Python 3.11 and its venv module builds it: the official image by default, or e.g. a
# Debian bookworm one (`--build-arg BASE_IMAGE=...`, as scripts/compose-smoke does where no registry
# is reachable). pip reads the usual PIP_* variables as build args, so a mirror or a local wheelhouse
# works too: --build-arg PIP_INDEX_URL=https://mirror/simple, or
# --build-arg PIP_FIND_LINKS=/wheels --build-arg PIP_NO_INDEX=1 with the folder mounted into the build.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
WORKDIR /app
# A virtual environment, not the base's own Python: a distribution's Python refuses `pip install`
# outside one (PEP 668), and `python`/`inferswarm` are on PATH either way.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY lib ./lib
RUN pip install .
COPY locustfiles ./locustfiles
COPY configs ./configs
COPY test-assets ./test-assets
EXPOSE 8000 8089 5557 9109
ENTRYPOINT ["inferswarm"]
CMD ["--help"]
