# widgetd with the plugins in this repo. The image runs `widgetd serve`: pass its options as arguments
# (`docker run -p 8080:8080 widgetd --model-id org/name`) or MODEL_ID and WIDGETD_* variables.
#   CPU:  docker build -t widgetd .
#   CUDA: docker build --build-arg DEVICE=cuda -t widgetd:cuda .   (run with --gpus all)
# Mount a volume at /data to keep downloaded models across restarts.
FROM python:3.11-slim

ARG DEVICE=cpu

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 widgetd

WORKDIR /opt/widgetd
COPY pyproject.toml README.md LICENSE ./
COPY spec ./spec
COPY widgetd ./widgetd
COPY plugins ./plugins

# PyPI's torch for Linux is the CUDA build (its CUDA libraries come as wheels; the driver is the host's);
# the CPU build is a fraction of its size. torch, torchvision and torchaudio come from one index in one
# command, so that their builds match (asteroid needs torchaudio; a PyPI torchaudio beside a CPU torch fails
# to import).
RUN case "$DEVICE" in \
        cpu) pip install --no-cache-dir torch torchvision torchaudio --index-url https://download.pytorch.org/whl/cpu ;; \
        cuda) pip install --no-cache-dir torch torchvision torchaudio ;; \
        *) echo "DEVICE must be cpu or cuda, not $DEVICE" >&2; exit 1 ;; \
    esac \
    && pip install --no-cache-dir ".[ray]" \
        ./plugins/widgetd-sentence-transformers \
        ./plugins/widgetd-transformers \
        ./plugins/widgetd-asteroid \
        ./plugins/widgetd-endpoint-handler \
        ./plugins/widgetd-sklearn \
        ./plugins/widgetd-diffusers \
    && mkdir -p /data && chown widgetd /data

USER widgetd
ENV HF_HOME=/data/huggingface \
    HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
ENTRYPOINT ["widgetd", "serve"]
