# syntax=docker/dockerfile:1.7
# Multi-stage: wheels are built once; `cpu` and `gpu` targets install them without compilers.
#   docker build --target cpu -t dupesift:cpu .
#   docker build --target gpu -t dupesift:gpu .   (onnxruntime-gpu + faiss-gpu, CUDA 12 runtime)

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS wheels
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY indexer ./indexer
COPY api ./api
COPY workers ./workers
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[workers]"

FROM python:${PYTHON_VERSION}-slim-bookworm AS cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DUPESIFT_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends curl libgomp1 && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 dupesift && mkdir /data && chown dupesift /data
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY models ./models
COPY migrations ./migrations
ENV DUPESIFT_MODEL_PATH=/app/models/dupesift-arcface-kd-lite0.onnx
USER dupesift
EXPOSE 8000
CMD ["dupesift", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 AS gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DUPESIFT_DATA_DIR=/data DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends software-properties-common curl libgomp1 \
    && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv \
    && useradd --create-home --uid 10001 dupesift && mkdir /data && chown dupesift /data
ENV PATH=/opt/venv/bin:$PATH
COPY --from=wheels /wheels /wheels
# the CPU builds of onnxruntime/faiss are replaced by the `gpu` extra's CUDA builds
RUN pip install --no-cache-dir /wheels/*.whl && pip uninstall -y onnxruntime faiss-cpu \
    && pip install --no-cache-dir "onnxruntime-gpu>=1.18" "faiss-gpu-cu12>=1.8" && rm -rf /wheels
WORKDIR /app
COPY models ./models
COPY migrations ./migrations
ENV DUPESIFT_MODEL_PATH=/app/models/dupesift-arcface-kd-lite0.onnx
USER dupesift
CMD ["dupesift", "worker", "--queues", "gpu", "--concurrency", "1"]
