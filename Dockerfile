# The inferswarm image: the CLI, Locust, the reference target and the test assets.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY lib ./lib
RUN pip install .
COPY locustfiles ./locustfiles
COPY configs ./configs
COPY test-assets ./test-assets
EXPOSE 8000 8089 5557 9109
ENTRYPOINT ["inferswarm"]
CMD ["--help"]
