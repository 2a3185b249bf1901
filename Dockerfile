# One image for the three services, the demo model maker and the integration tests.
#   docker build -t llama-grpc .                                      (CPU)
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t llama-grpc:cuda .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Node.js runs the example client in the integration tests (the `tests` compose service).
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*

# torch first and from its own index: a plain `pip install torch` would pull a multi-GB CUDA build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

COPY pyproject.toml README.md ./
COPY llama ./llama
COPY llama_grpc ./llama_grpc
COPY tokenizer_svc ./tokenizer_svc
COPY model_svc ./model_svc
COPY gateway ./gateway
COPY demo ./demo
COPY benchmarks ./benchmarks
RUN pip install '.[test]'
COPY protos ./protos
COPY examples ./examples
RUN npm ci --prefix examples/node --no-audit --no-fund
COPY tests ./tests

# Services run unprivileged; /models is where the demo model or real weights live.
RUN useradd --create-home --uid 1000 llama && mkdir -p /models && chown llama /models
USER llama
ENV XDG_CACHE_HOME=/models
EXPOSE 50051 50052 50053
CMD ["python", "-m", "gateway", "--help"]
