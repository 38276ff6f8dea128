# syntax=docker/dockerfile:1
# vChat's image: the Streamlit app on port 8005, the local VideoChat-R1.5 model on an NVIDIA GPU, the
# `vchat` / `vchat-finetune` commands. Built and run by docker-compose.yml (README: "Quick start with
# Docker"): docker compose up --build -d
#
# CUDA: torch 2.14.1's Linux wheels on PyPI are built for CUDA 13.0 and bring their own CUDA 13.0
# user-space libraries (cuda-toolkit 13.0.3, cuDNN 9 for cu13) as pip packages; the base image is the
# CUDA 13.0 runtime to match, so the host needs an NVIDIA driver for CUDA 13.0 (580 or newer) and the
# NVIDIA Container Toolkit. Python 3.11, the version requirements.txt is pinned and tested on, comes
# from uv's standalone builds (Ubuntu 24.04's own Python is 3.12).

FROM ghcr.io/astral-sh/uv:0.9.26 AS uv

FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04

# Optional flash-attention 2: FLASH_ATTN_VERSION=2.8.3 (say) installs flash-attn==2.8.3, whose setup picks
# the prebuilt wheel for this torch (2.14), CUDA (13.0), Python (3.11) and C++ ABI from the project's
# releases, or compiles, which needs nvcc (a -devel base image, not this one). Off by default: the app runs
# with PyTorch's SDPA, and a wheel built for another torch or ABI installs fine and fails only at import,
# so the build imports it to be sure.
ARG FLASH_ATTN_VERSION=""

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install 3.11 && uv venv --seed --python 3.11 /opt/venv

WORKDIR /app

# The pinned requirements first (requirements.txt and the files it includes): this layer, the big one,
# is built again only when a requirements file changes, not when the source does.
COPY requirements*.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
    && if [ -n "$FLASH_ATTN_VERSION" ]; then \
        pip install --no-cache-dir --no-build-isolation "flash-attn==${FLASH_ATTN_VERSION}" \
        && python -c "import flash_attn, torch; print('flash-attn', flash_attn.__version__, 'torch', torch.__version__)"; \
    fi

# The app itself, installed editable (/app is what runs) for the `vchat` and `vchat-finetune` commands.
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && (userdel --remove ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid 1000 --user-group --shell /bin/bash vchat \
    && mkdir -p huggingface_cache data videos lora_adapters VideoChat-R1 \
    && chown vchat:vchat huggingface_cache data videos lora_adapters

# Runtime state lives on volumes: the Hugging Face cache (model weights), vChat's data dir (media,
# results, jobs), the media folder, the LoRA adapters. ./VideoChat-R1, when pre-seeded, is mounted
# read-only by docker-compose.yml and used instead of the cache, as outside Docker.
ENV HF_HOME=/app/huggingface_cache \
    VCHAT_DATA_DIR=/app/data \
    VCHAT_MEDIA_DIR=/app/videos \
    VCHAT_ADAPTERS_DIR=/app/lora_adapters \
    VCHAT_PRESEED_DIR=/app/VideoChat-R1
VOLUME ["/app/huggingface_cache", "/app/data", "/app/videos", "/app/lora_adapters"]

USER 1000:1000
EXPOSE 8005
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8005/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "Home.py", "--server.address=0.0.0.0"]
